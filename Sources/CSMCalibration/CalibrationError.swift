/// A problem with the inputs of a calibration computation (metrics, temperature fit, loss).
public enum CalibrationError: Error, CustomStringConvertible, Equatable {
    /// No samples, or no classes.
    case empty(String)
    /// Array lengths that do not agree, e.g. `logits.count != samples × classes`.
    case shapeMismatch(String)
    /// A label outside 0..<classCount.
    case labelOutOfRange(sample: Int, label: Int, classCount: Int)
    /// A logit that is NaN or +∞ (or a row that is −∞ throughout).
    case nonFiniteLogit(sample: Int)
    /// A parameter outside its domain (bin count, γ, smoothing, temperature bracket, …).
    case invalidParameter(String)

    public var description: String {
        switch self {
        case .empty(let what): return "empty input: \(what)"
        case .shapeMismatch(let what): return "shape mismatch: \(what)"
        case .labelOutOfRange(let sample, let label, let classCount):
            return "label \(label) of sample \(sample) is outside 0..<\(classCount)"
        case .nonFiniteLogit(let sample): return "sample \(sample) has a NaN or infinite logit"
        case .invalidParameter(let what): return "invalid parameter: \(what)"
        }
    }
}

/// Checks that `logitCount` values make `sampleCount` rows of `classCount` and that every
/// label names a class; returns the number of samples.
func validate(logitCount: Int, classCount: Int, labels: [Int]) throws -> Int {
    guard classCount > 0 else { throw CalibrationError.empty("no classes") }
    guard !labels.isEmpty else { throw CalibrationError.empty("no samples") }
    guard logitCount == labels.count * classCount else {
        throw CalibrationError.shapeMismatch(
            "\(logitCount) logits for \(labels.count) labels × \(classCount) classes (expected \(labels.count * classCount))")
    }
    for (i, label) in labels.enumerated() where label < 0 || label >= classCount {
        throw CalibrationError.labelOutOfRange(sample: i, label: label, classCount: classCount)
    }
    return labels.count
}

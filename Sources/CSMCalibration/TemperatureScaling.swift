import Foundation

/// The result of fitting a temperature on validation logits.
public struct TemperatureFit: Equatable, Codable, Sendable {
    /// The fitted temperature T: calibrated probabilities are softmax(logits / T).
    public var temperature: Double
    /// Mean negative log-likelihood of the validation set at T = 1.
    public var nllBefore: Double
    /// Mean negative log-likelihood of the validation set at the fitted T.
    public var nllAfter: Double
    /// Passes over the validation logits the search made (the one at T = 1 included).
    public var evaluations: Int
    /// True when T sits at an end of the search range, i.e. the optimum may lie beyond it
    /// (for instance when every validation sample is classified correctly, T → 0).
    public var atBoundary: Bool
}

/// Temperature scaling (Guo et al., 2017): one scalar T > 0 dividing all logits, chosen to
/// minimise the negative log-likelihood of held-out samples. It changes confidence, never
/// the predicted class.
///
/// The NLL is convex in β = 1/T, with analytic first and second derivatives
/// (mean E_p[z] − z_y and mean Var_p[z]). The fit is a safeguarded Newton search for the
/// root of the first derivative over `range`: Newton steps inside a bracket that always
/// holds the root, geometric bisection whenever a step would leave it. It needs a handful of
/// passes over the logits (each O(N·K), parallel) and converges to machine precision.
public enum TemperatureScaling {
    /// Fits T on validation `logits` (rows of `classCount`) and integer `labels`.
    public static func fit(
        logits: [Float], classCount: Int, labels: [Int], range: ClosedRange<Double> = 0.01...100
    ) throws -> TemperatureFit {
        try logits.withUnsafeBufferPointer { try fit($0, classCount: classCount, labels: labels, range: range) }
    }

    /// Fits T on Float64 validation logits; see the Float overload.
    public static func fit(
        logits: [Double], classCount: Int, labels: [Int], range: ClosedRange<Double> = 0.01...100
    ) throws -> TemperatureFit {
        try logits.withUnsafeBufferPointer { try fit($0, classCount: classCount, labels: labels, range: range) }
    }

    /// Fits T on Float logits in memory csm does not own (e.g. a memory-mapped .npy file),
    /// without copying them.
    public static func fit(
        logits: UnsafeBufferPointer<Float>, classCount: Int, labels: [Int], range: ClosedRange<Double> = 0.01...100
    ) throws -> TemperatureFit {
        try fit(logits, classCount: classCount, labels: labels, range: range)
    }

    /// Mean −log softmax(logits / T)_y over the samples.
    public static func negativeLogLikelihood(
        logits: [Float], classCount: Int, labels: [Int], temperature: Double
    ) throws -> Double {
        try logits.withUnsafeBufferPointer { try checkedNLL($0, classCount: classCount, labels: labels, temperature: temperature) }
    }

    /// Mean −log softmax(logits / T)_y over the samples, for Float64 logits.
    public static func negativeLogLikelihood(
        logits: [Double], classCount: Int, labels: [Int], temperature: Double
    ) throws -> Double {
        try logits.withUnsafeBufferPointer { try checkedNLL($0, classCount: classCount, labels: labels, temperature: temperature) }
    }

    /// `logits` divided by `temperature`, as Float, ready for any softmax.
    public static func scaled(logits: [Float], temperature: Double) -> [Float] {
        let inverse = Float(1 / temperature)
        return logits.map { $0 * inverse }
    }

    // MARK: - Search

    static func checkedNLL<T: BinaryFloatingPoint>(
        _ logits: UnsafeBufferPointer<T>, classCount: Int, labels: [Int], temperature: Double
    ) throws -> Double {
        _ = try validate(logitCount: logits.count, classCount: classCount, labels: labels)
        guard temperature > 0, temperature.isFinite else {
            throw CalibrationError.invalidParameter("temperature \(temperature) must be positive and finite")
        }
        let result = NLLEvaluator(logits: logits, classCount: classCount, labels: labels).evaluate(beta: 1 / temperature)
        if let bad = result.firstBadSample { throw CalibrationError.nonFiniteLogit(sample: bad) }
        return result.value
    }

    static func fit<T: BinaryFloatingPoint>(
        _ logits: UnsafeBufferPointer<T>, classCount: Int, labels: [Int], range: ClosedRange<Double>
    ) throws -> TemperatureFit {
        _ = try validate(logitCount: logits.count, classCount: classCount, labels: labels)
        guard range.lowerBound > 0, range.upperBound.isFinite, range.lowerBound < range.upperBound else {
            throw CalibrationError.invalidParameter("temperature range \(range) must be positive, finite and not empty")
        }
        let evaluator = NLLEvaluator(logits: logits, classCount: classCount, labels: labels)
        var evaluations = 0
        func evaluate(_ beta: Double) -> NLLEvaluator<T>.Result {
            evaluations += 1
            return evaluator.evaluate(beta: beta, derivatives: true)
        }

        // Search β = 1/T in [1/Tmax, 1/Tmin]. The NLL is convex in β, so its derivative g
        // increases: keep a bracket [low, high] around the root of g, take Newton steps
        // inside it and bisect (geometrically) whenever a step would leave it.
        var low = 1 / range.upperBound, high = 1 / range.lowerBound
        var lowEvaluated = false, highEvaluated = false
        let start = min(max(1, low), high)
        let before = evaluate(1)
        if let bad = before.firstBadSample { throw CalibrationError.nonFiniteLogit(sample: bad) }
        var beta = start
        var here = start == 1 ? before : evaluate(start)
        var atBoundary = false
        for _ in 0..<100 {
            if here.first > 0 {
                high = beta
                highEvaluated = true
            } else {
                low = beta
                lowEvaluated = true
            }
            if here.first == 0 || high / low - 1 < 1e-12 { break }
            var next = here.second > 0 ? beta - here.first / here.second : .nan
            if !(next > low && next < high) {
                // The step leaves the bracket. If that side is an end of the search range not
                // yet looked at, look there: the optimum may lie at (or beyond) it.
                if here.first < 0 && !highEvaluated {
                    let end = evaluate(high)
                    highEvaluated = true
                    if end.first <= 0 {
                        beta = high; here = end; atBoundary = true
                        break
                    }
                } else if here.first > 0 && !lowEvaluated {
                    let end = evaluate(low)
                    lowEvaluated = true
                    if end.first >= 0 {
                        beta = low; here = end; atBoundary = true
                        break
                    }
                }
                next = (low * high).squareRoot()
            }
            let converged = abs(next - beta) <= 1e-12 * beta
            beta = next
            here = evaluate(beta)
            if converged { break }
        }
        return TemperatureFit(
            temperature: 1 / beta, nllBefore: before.value, nllAfter: here.value,
            evaluations: evaluations, atBoundary: atBoundary)
    }
}

/// Mean NLL of softmax(β · logits) and its first two derivatives in β, over all samples.
struct NLLEvaluator<T: BinaryFloatingPoint> {
    let logits: UnsafeBufferPointer<T>
    let classCount: Int
    let labels: [Int]

    struct Result {
        var value = 0.0
        /// dNLL/dβ = mean(E_p[z] − z_y).
        var first = 0.0
        /// d²NLL/dβ² = mean(Var_p[z]) ≥ 0.
        var second = 0.0
        var firstBadSample: Int? = nil
    }

    static var chunkRows: Int { 16_384 }

    func evaluate(beta: Double, derivatives: Bool = false) -> Result {
        let n = labels.count, k = classCount
        let chunkCount = (n + Self.chunkRows - 1) / Self.chunkRows
        var partial = [Result](repeating: Result(), count: chunkCount)
        labels.withUnsafeBufferPointer { labels in
            partial.withUnsafeMutableBufferPointer { out in
                DispatchQueue.concurrentPerform(iterations: chunkCount) { chunk in
                    var result = Result()
                    let start = chunk * Self.chunkRows, end = min(n, start + Self.chunkRows)
                    for i in start..<end {
                        let z = logits.baseAddress! + i * k
                        var top = -Double.infinity
                        var sawNaN = false
                        for c in 0..<k {
                            let v = Double(z[c])
                            if v > top { top = v } else if v.isNaN { sawNaN = true }
                        }
                        guard top.isFinite, !sawNaN else {
                            if result.firstBadSample == nil { result.firstBadSample = i }
                            continue
                        }
                        var sum = 0.0, s1 = 0.0, s2 = 0.0
                        for c in 0..<k {
                            let shifted = Double(z[c]) - top
                            let e = exp(beta * shifted)
                            sum += e
                            if derivatives {
                                s1 += e * shifted
                                s2 += e * shifted * shifted
                            }
                        }
                        let zy = Double(z[labels[i]]) - top
                        result.value += log(sum) - beta * zy
                        if derivatives {
                            let mean = s1 / sum
                            result.first += mean - zy
                            result.second += max(s2 / sum - mean * mean, 0)
                        }
                    }
                    out[chunk] = result
                }
            }
        }
        var total = Result()
        for part in partial {
            total.value += part.value
            total.first += part.first
            total.second += part.second
            if total.firstBadSample == nil { total.firstBadSample = part.firstBadSample }
        }
        total.value /= Double(n)
        total.first /= Double(n)
        total.second /= Double(n)
        return total
    }
}

import Foundation

/// Numerically stable softmax helpers, in Float64.
public enum Softmax {
    /// Row-wise softmax of `logits` (rows of `classCount`) divided by `temperature`.
    public static func probabilities(logits: [Double], classCount: Int, temperature: Double = 1) throws -> [Double] {
        try checkRows(logits.count, classCount, temperature)
        var out = [Double](repeating: 0, count: logits.count)
        let inverse = 1 / temperature
        logits.withUnsafeBufferPointer { z in
            out.withUnsafeMutableBufferPointer { p in
                for row in 0..<(logits.count / classCount) {
                    let base = row * classCount
                    let lse = logSumExp(z.baseAddress! + base, count: classCount, scale: inverse)
                    for k in 0..<classCount {
                        p[base + k] = exp(z[base + k] * inverse - lse)
                    }
                }
            }
        }
        return out
    }

    /// Row-wise log-softmax of `logits` (rows of `classCount`) divided by `temperature`.
    public static func logProbabilities(logits: [Double], classCount: Int, temperature: Double = 1) throws -> [Double] {
        try checkRows(logits.count, classCount, temperature)
        var out = [Double](repeating: 0, count: logits.count)
        let inverse = 1 / temperature
        logits.withUnsafeBufferPointer { z in
            for row in 0..<(logits.count / classCount) {
                let base = row * classCount
                let lse = logSumExp(z.baseAddress! + base, count: classCount, scale: inverse)
                for k in 0..<classCount {
                    out[base + k] = z[base + k] * inverse - lse
                }
            }
        }
        return out
    }

    private static func checkRows(_ count: Int, _ classCount: Int, _ temperature: Double) throws {
        guard classCount > 0 else { throw CalibrationError.empty("no classes") }
        guard count % classCount == 0 else {
            throw CalibrationError.shapeMismatch("\(count) logits do not make rows of \(classCount) classes")
        }
        guard temperature > 0, temperature.isFinite else {
            throw CalibrationError.invalidParameter("temperature \(temperature) must be positive and finite")
        }
    }
}

/// log Σ_k exp(scale · z_k), shifted by the maximum so no term overflows.
@inline(__always)
func logSumExp<T: BinaryFloatingPoint>(_ z: UnsafePointer<T>, count: Int, scale: Double) -> Double {
    var m = -Double.infinity
    for k in 0..<count { m = max(m, Double(z[k]) * scale) }
    guard m.isFinite else { return m }
    var sum = 0.0
    for k in 0..<count { sum += exp(Double(z[k]) * scale - m) }
    return m + log(sum)
}

/// One row's softmax, written to `p`, with the quantities the metrics need.
struct SoftmaxRow {
    /// Class with the highest logit; ties go to the lowest index, as numpy.argmax does.
    var argmax: Int
    /// log Σ exp(scale·z), or a non-finite value when the row has NaN or +∞ logits.
    var logSumExp: Double
    /// Whether every value is usable (no NaN, no +∞, not all −∞).
    var isFinite: Bool
}

/// Computes p_k = softmax(scale · z)_k into `p` and returns the row's argmax and log-sum-exp.
@inline(__always)
func softmaxRow<T: BinaryFloatingPoint>(
    _ z: UnsafePointer<T>, count: Int, scale: Double, into p: UnsafeMutablePointer<Double>
) -> SoftmaxRow {
    var m = -Double.infinity
    var best = 0
    var sawNaN = false
    for k in 0..<count {
        let v = Double(z[k]) * scale
        if v > m {
            m = v
            best = k
        } else if v.isNaN {
            sawNaN = true
        }
    }
    guard m.isFinite, !sawNaN else { return SoftmaxRow(argmax: best, logSumExp: .nan, isFinite: false) }
    var sum = 0.0
    for k in 0..<count {
        let e = exp(Double(z[k]) * scale - m)
        p[k] = e
        sum += e
    }
    let inverse = 1 / sum
    for k in 0..<count { p[k] *= inverse }
    return SoftmaxRow(argmax: best, logSumExp: m + log(sum), isFinite: true)
}

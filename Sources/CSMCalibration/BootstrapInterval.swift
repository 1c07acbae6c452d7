import CSMRandom
import Foundation

/// A bootstrap percentile interval of the expected calibration error.
///
/// The N evaluated samples are resampled with replacement R times; resample r draws its N
/// indices from `BootstrapRandom(seed: seed, resample: r)`, so the interval is a pure
/// function of (samples, bins, R, seed), whatever the number of cores. Each resample's ECE
/// uses the same B equal-width bins as `CalibrationMetrics.ece`. The bounds are the
/// (1 − level)/2 and (1 + level)/2 percentiles of the R values (2.5% and 97.5% for the
/// default 95%) by linear interpolation between order statistics, numpy.percentile's default:
/// with the values sorted as x₀ ≤ … ≤ x_{R−1} and h = (R − 1)·q, the q-percentile is
/// x_⌊h⌋ + (h − ⌊h⌋)·(x_{⌊h⌋+1} − x_⌊h⌋).
public struct BootstrapInterval: Equatable, Codable, Sendable {
    /// Lower bound: the (1 − level)/2 percentile.
    public var lower: Double
    /// Upper bound: the (1 + level)/2 percentile.
    public var upper: Double
    /// Resamples R.
    public var resamples: Int
    /// Seed of the draws.
    public var seed: UInt64
    /// Coverage, e.g. 0.95.
    public var level: Double

    public init(lower: Double, upper: Double, resamples: Int, seed: UInt64, level: Double) {
        self.lower = lower
        self.upper = upper
        self.resamples = resamples
        self.seed = seed
        self.level = level
    }
}

extension BootstrapInterval {
    /// The ECE interval of `logits` (N rows of `classCount`) against `labels`, the logits
    /// divided by `temperature` first.
    /// - Throws: `CalibrationError` on mismatched sizes, bad labels, non-finite logits, or a
    ///   bin count, resample count or level out of range.
    public static func ece<T: BinaryFloatingPoint>(
        logits: UnsafeBufferPointer<T>, classCount: Int, labels: [Int], binCount: Int = 15, temperature: Double = 1,
        resamples: Int, seed: UInt64, level: Double = 0.95
    ) throws -> BootstrapInterval {
        let top = try TopConfidences(logits: logits, classCount: classCount, labels: labels, temperature: temperature)
        return try ece(confidences: top.confidences, outcomes: top.outcomes, binCount: binCount, resamples: resamples, seed: seed,
                       level: level)
    }

    /// The ECE interval of `logits` held in an array; see the buffer overload.
    public static func ece<T: BinaryFloatingPoint>(
        logits: [T], classCount: Int, labels: [Int], binCount: Int = 15, temperature: Double = 1,
        resamples: Int, seed: UInt64, level: Double = 0.95
    ) throws -> BootstrapInterval {
        try logits.withUnsafeBufferPointer {
            try ece(logits: $0, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature,
                    resamples: resamples, seed: seed, level: level)
        }
    }

    /// The ECE interval of top-1 `confidences` with `outcomes` (1 correct, 0 wrong).
    public static func ece(confidences: [Double], outcomes: [Double], binCount: Int = 15, resamples: Int, seed: UInt64,
                           level: Double = 0.95) throws -> BootstrapInterval {
        guard level > 0, level < 1 else { throw CalibrationError.invalidParameter("level \(level) must lie in (0, 1)") }
        let values = try resampledECE(confidences: confidences, outcomes: outcomes, binCount: binCount, resamples: resamples,
                                      seed: seed).sorted()
        return BootstrapInterval(lower: percentile(sorted: values, (1 - level) / 2), upper: percentile(sorted: values, (1 + level) / 2),
                                 resamples: resamples, seed: seed, level: level)
    }

    /// The ECE of each of the `resamples` resamples, in resample order.
    public static func resampledECE(confidences: [Double], outcomes: [Double], binCount: Int, resamples: Int,
                                    seed: UInt64) throws -> [Double] {
        guard binCount > 0 else { throw CalibrationError.invalidParameter("bin count \(binCount) must be positive") }
        guard resamples > 0 else { throw CalibrationError.invalidParameter("resample count \(resamples) must be positive") }
        guard confidences.count == outcomes.count else {
            throw CalibrationError.shapeMismatch("\(confidences.count) confidences, \(outcomes.count) outcomes")
        }
        let n = confidences.count
        guard n > 0 else { throw CalibrationError.empty("no samples") }
        if let bad = confidences.firstIndex(where: { !$0.isFinite }) {
            throw CalibrationError.invalidParameter("confidence of sample \(bad) is not finite")
        }
        let binOf = confidences.map { equalWidthBin($0, binCount: binCount) }
        var values = [Double](repeating: 0, count: resamples)
        values.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: resamples) { r in
                var random = BootstrapRandom(seed: seed, resample: r)
                var accumulator = BinAccumulator(binCount: binCount)
                for _ in 0..<n {
                    let i = random.next(below: n)
                    accumulator.add(bin: binOf[i], confidence: confidences[i], outcome: outcomes[i])
                }
                out[r] = accumulator.expectedError(total: n)
            }
        }
        return values
    }

    /// The q-percentile (0 ≤ q ≤ 1) of ascending `sorted` values by linear interpolation
    /// between order statistics (numpy.percentile's default); NaN when empty.
    public static func percentile(sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let h = Double(sorted.count - 1) * min(max(q, 0), 1)
        let i = Int(h.rounded(.down))
        guard i + 1 < sorted.count else { return sorted[sorted.count - 1] }
        return sorted[i] + (h - Double(i)) * (sorted[i + 1] - sorted[i])
    }
}

/// The draws of one bootstrap resample: SplitMix64 started from (seed, resample), with
/// unbiased bounded integers (Lemire's multiply-and-reject).
public struct BootstrapRandom: Sendable {
    private var generator: SplitMix64

    /// The generator of resample `resample` under `seed`.
    public init(seed: UInt64, resample: Int) {
        var first = SplitMix64(state: seed)
        generator = SplitMix64(state: first.next() ^ (UInt64(truncatingIfNeeded: resample) &* 0xD1B5_4A32_D192_ED03))
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 { generator.next() }

    /// A uniform integer in 0..<bound (bound > 0).
    public mutating func next(below bound: Int) -> Int {
        let b = UInt64(bound)
        var product = next().multipliedFullWidth(by: b)
        if product.low < b {
            let threshold = (0 &- b) % b
            while product.low < threshold { product = next().multipliedFullWidth(by: b) }
        }
        return Int(product.high)
    }
}

/// The top-1 confidence and correctness (1 or 0) of each sample, the argmax taking the
/// lowest index on ties as `CalibrationMetrics` does.
struct TopConfidences {
    var confidences: [Double]
    var outcomes: [Double]

    init<T: BinaryFloatingPoint>(logits: UnsafeBufferPointer<T>, classCount: Int, labels: [Int], temperature: Double) throws {
        let n = try validate(logitCount: logits.count, classCount: classCount, labels: labels)
        guard temperature > 0, temperature.isFinite else {
            throw CalibrationError.invalidParameter("temperature \(temperature) must be positive and finite")
        }
        var confidences = [Double](repeating: 0, count: n), outcomes = [Double](repeating: 0, count: n)
        let p = UnsafeMutablePointer<Double>.allocate(capacity: classCount)
        defer { p.deallocate() }
        for i in 0..<n {
            let row = softmaxRow(logits.baseAddress! + i * classCount, count: classCount, scale: 1 / temperature, into: p)
            guard row.isFinite else { throw CalibrationError.nonFiniteLogit(sample: i) }
            confidences[i] = p[row.argmax]
            outcomes[i] = row.argmax == labels[i] ? 1 : 0
        }
        self.confidences = confidences
        self.outcomes = outcomes
    }
}

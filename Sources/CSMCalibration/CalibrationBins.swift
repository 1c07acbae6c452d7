/// Statistics of one confidence bin of a reliability diagram.
public struct CalibrationBin: Equatable, Codable, Sendable {
    /// Lower edge (exclusive, except that the first bin also takes confidences at or below it).
    public var lower: Double
    /// Upper edge (inclusive).
    public var upper: Double
    /// Number of samples in the bin.
    public var count: Int
    /// Mean confidence of the samples in the bin (0 when empty).
    public var meanConfidence: Double
    /// Fraction of the bin's samples that are correct — or, for class-wise bins, that belong
    /// to the class (0 when empty).
    public var accuracy: Double

    public init(lower: Double, upper: Double, count: Int, meanConfidence: Double, accuracy: Double) {
        self.lower = lower
        self.upper = upper
        self.count = count
        self.meanConfidence = meanConfidence
        self.accuracy = accuracy
    }

    /// |accuracy − mean confidence|: how far the bin is from calibrated.
    public var gap: Double { abs(accuracy - meanConfidence) }
}

/// The binning schemes of the calibration metrics, usable on any (confidence, outcome) pairs.
///
/// Equal-width binning (ECE, MCE, class-wise ECE): B bins with edges b/B; a bin holds the
/// confidences c with lower < c ≤ upper, and confidence 0 (or below) falls in the first bin.
///
/// Equal-count binning (AdaECE): edges are `numpy.interp(linspace(0, N, B+1), arange(N),
/// sort(c))`, i.e. linear interpolation of the sorted confidences; bins are again (lower,
/// upper], and the first bin also takes the smallest confidence. Ties can leave bins empty.
public enum CalibrationBinning {
    /// Equal-width bins of `confidences` with the mean `outcomes` (1 correct, 0 wrong; soft
    /// values allowed) per bin.
    public static func equalWidth(confidences: [Double], outcomes: [Double], binCount: Int) throws -> [CalibrationBin] {
        try check(confidences, outcomes, binCount)
        var accumulator = BinAccumulator(binCount: binCount)
        for (c, y) in zip(confidences, outcomes) {
            accumulator.add(bin: equalWidthBin(c, binCount: binCount), confidence: c, outcome: y)
        }
        return accumulator.bins(edges: equalWidthEdges(binCount))
    }

    /// Equal-count (adaptive) bins of `confidences` with the mean `outcomes` per bin.
    public static func equalCount(confidences: [Double], outcomes: [Double], binCount: Int) throws -> [CalibrationBin] {
        try check(confidences, outcomes, binCount)
        let pairs = zip(confidences, outcomes).map { ConfidenceOutcome(confidence: $0.0, outcome: $0.1) }
            .sorted { $0.confidence < $1.confidence }
        return equalCountBins(sorted: pairs, binCount: binCount)
    }

    /// Expected calibration error of `bins`: Σ_b (n_b / N) · |accuracy_b − confidence_b|.
    public static func expectedError(_ bins: [CalibrationBin]) -> Double {
        let total = bins.reduce(0) { $0 + $1.count }
        guard total > 0 else { return 0 }
        return bins.reduce(0.0) { $0 + Double($1.count) * $1.gap } / Double(total)
    }

    /// Maximum calibration error of `bins`: the largest gap over non-empty bins.
    public static func maximumError(_ bins: [CalibrationBin]) -> Double {
        bins.filter { $0.count > 0 }.map(\.gap).max() ?? 0
    }

    /// The B + 1 equal-width edges 0, 1/B, …, 1.
    public static func equalWidthEdges(_ binCount: Int) -> [Double] {
        (0...binCount).map { Double($0) / Double(binCount) }
    }

    private static func check(_ confidences: [Double], _ outcomes: [Double], _ binCount: Int) throws {
        guard binCount > 0 else { throw CalibrationError.invalidParameter("bin count \(binCount) must be positive") }
        guard confidences.count == outcomes.count else {
            throw CalibrationError.shapeMismatch("\(confidences.count) confidences, \(outcomes.count) outcomes")
        }
        guard !confidences.isEmpty else { throw CalibrationError.empty("no samples") }
        if let bad = confidences.firstIndex(where: { $0.isNaN }) {
            throw CalibrationError.invalidParameter("confidence of sample \(bad) is NaN")
        }
    }
}

/// Index of the equal-width bin (lower, upper] holding confidence `c`, edges b/B computed
/// exactly as `equalWidthEdges` does so that a confidence on an edge lands in the bin below.
@inline(__always)
func equalWidthBin(_ c: Double, binCount: Int) -> Int {
    guard c > 0 else { return 0 }
    let scale = Double(binCount)
    var b = Int(min((c * scale).rounded(.up), scale)) - 1
    if b < 0 { b = 0 }
    if b > 0 && c <= Double(b) / scale {
        b -= 1
    } else if b < binCount - 1 && c > Double(b + 1) / scale {
        b += 1
    }
    return b
}

/// Running sums of one set of bins.
struct BinAccumulator {
    var counts: [Int]
    var confidenceSums: [Double]
    var outcomeSums: [Double]

    init(binCount: Int) {
        counts = [Int](repeating: 0, count: binCount)
        confidenceSums = [Double](repeating: 0, count: binCount)
        outcomeSums = [Double](repeating: 0, count: binCount)
    }

    @inline(__always)
    mutating func add(bin: Int, confidence: Double, outcome: Double) {
        counts[bin] += 1
        confidenceSums[bin] += confidence
        outcomeSums[bin] += outcome
    }

    mutating func merge(_ other: BinAccumulator) {
        for b in counts.indices {
            counts[b] += other.counts[b]
            confidenceSums[b] += other.confidenceSums[b]
            outcomeSums[b] += other.outcomeSums[b]
        }
    }

    func bins(edges: [Double]) -> [CalibrationBin] {
        counts.indices.map { b in
            let n = counts[b]
            return CalibrationBin(
                lower: edges[b], upper: edges[b + 1], count: n,
                meanConfidence: n > 0 ? confidenceSums[b] / Double(n) : 0,
                accuracy: n > 0 ? outcomeSums[b] / Double(n) : 0)
        }
    }

    /// Σ_b |Σ outcome − Σ confidence| / total: the expected calibration error of these bins.
    func expectedError(total: Int) -> Double {
        var sum = 0.0
        for b in counts.indices { sum += abs(outcomeSums[b] - confidenceSums[b]) }
        return sum / Double(total)
    }
}

struct ConfidenceOutcome {
    var confidence: Double
    var outcome: Double
}

/// Equal-count bins of pairs already sorted by confidence (see `CalibrationBinning`).
func equalCountBins(sorted pairs: [ConfidenceOutcome], binCount: Int) -> [CalibrationBin] {
    let n = pairs.count
    // Edges: numpy.interp(linspace(0, n, B+1), arange(n), sorted confidences).
    let step = Double(n) / Double(binCount)
    var edges = [Double](repeating: 0, count: binCount + 1)
    for j in 0...binCount {
        let x = j == binCount ? Double(n) : Double(j) * step
        let i = Int(x.rounded(.down))
        if i >= n - 1 {
            edges[j] = pairs[n - 1].confidence
        } else {
            let t = x - Double(i)
            let lo = pairs[i].confidence, hi = pairs[i + 1].confidence
            edges[j] = t == 0 ? lo : (hi - lo) * t + lo
        }
        if j > 0 { edges[j] = max(edges[j], edges[j - 1]) }
    }
    // With non-decreasing edges, a sorted confidence belongs to the first bin whose upper
    // edge reaches it; this equals the (lower, upper] test, first bin closed below.
    var accumulator = BinAccumulator(binCount: binCount)
    var bin = 0
    for pair in pairs {
        while bin < binCount - 1 && pair.confidence > edges[bin + 1] { bin += 1 }
        accumulator.add(bin: bin, confidence: pair.confidence, outcome: pair.outcome)
    }
    return accumulator.bins(edges: edges)
}

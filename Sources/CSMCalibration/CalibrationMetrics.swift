import Foundation

/// Calibration and accuracy metrics of a classifier on labelled samples, computed from
/// logits in Float64 with a numerically stable softmax.
///
/// - accuracy: fraction of samples whose argmax (lowest index on ties) is the label;
/// - nll: mean −log p_y;
/// - brier: Σ_k (p_k − y_k)², averaged over samples;
/// - ece / mce: expected / maximum calibration error of the top-1 confidence over B
///   equal-width bins (see `CalibrationBinning`);
/// - adaece: ECE over B equal-count bins;
/// - cece: class-wise ECE: for each class k the ECE of p_k against 1[y = k] over B
///   equal-width bins, averaged over classes.
///
/// Cost is O(N·K + N log N) for N samples of K classes, spread over the cores.
public struct CalibrationMetrics: Equatable, Codable, Sendable {
    /// Number of samples N.
    public var sampleCount: Int
    /// Number of classes K.
    public var classCount: Int
    /// Number of bins B of every binned metric.
    public var binCount: Int
    /// Temperature the logits were divided by before the softmax (1: none).
    public var temperature: Double

    public var accuracy: Double
    public var nll: Double
    public var brier: Double
    public var ece: Double
    public var mce: Double
    public var adaece: Double
    public var cece: Double

    /// Equal-width bins of the top-1 confidence (the reliability diagram's bars).
    public var bins: [CalibrationBin]
    /// Equal-count bins of the top-1 confidence (AdaECE's).
    public var adaptiveBins: [CalibrationBin]
    /// ECE of each class's probability; `cece` is their mean.
    public var classwiseECE: [Double]

    /// Mean top-1 confidence.
    public var meanConfidence: Double {
        let total = bins.reduce(0) { $0 + $1.count }
        guard total > 0 else { return 0 }
        return bins.reduce(0.0) { $0 + $1.meanConfidence * Double($1.count) } / Double(total)
    }

    /// The metrics by name, in the order csm prints them:
    /// accuracy, nll, brier, ece, mce, adaece, cece.
    public var namedValues: [(name: String, value: Double)] {
        [("accuracy", accuracy), ("nll", nll), ("brier", brier), ("ece", ece), ("mce", mce),
         ("adaece", adaece), ("cece", cece)]
    }
}

extension CalibrationMetrics {
    /// Metrics of `logits` (N rows of `classCount`, row-major) against integer `labels`.
    ///
    /// - Parameters:
    ///   - binCount: bins of ECE, MCE, AdaECE and class-wise ECE (15 by default).
    ///   - temperature: divide the logits by this before the softmax (temperature scaling).
    /// - Throws: `CalibrationError` on mismatched sizes, labels outside 0..<K, non-finite
    ///   logits, or a bin count or temperature that is not positive.
    public init(logits: [Float], classCount: Int, labels: [Int], binCount: Int = 15, temperature: Double = 1) throws {
        self = try logits.withUnsafeBufferPointer {
            try MetricsEngine.compute($0, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature)
        }
    }

    /// Metrics of Float logits in memory csm does not own (e.g. a memory-mapped .npy file,
    /// see `NumPyArray.withFloat32Elements`), without copying them; see the array overload.
    public init(
        logits: UnsafeBufferPointer<Float>, classCount: Int, labels: [Int], binCount: Int = 15, temperature: Double = 1
    ) throws {
        self = try MetricsEngine.compute(logits, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature)
    }

    /// Metrics of Float64 `logits`; see the Float overload.
    public init(logits: [Double], classCount: Int, labels: [Int], binCount: Int = 15, temperature: Double = 1) throws {
        self = try logits.withUnsafeBufferPointer {
            try MetricsEngine.compute($0, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature)
        }
    }
}

/// The single pass over the logits behind `CalibrationMetrics`.
enum MetricsEngine {
    /// Rows per parallel work item. Fixed, so sums do not depend on the number of cores.
    static let chunkRows = 16_384

    /// Per-chunk sums, merged in chunk order.
    struct Totals {
        var correct = 0
        var nll = 0.0
        var brier = 0.0
        var firstBadSample: Int? = nil
        var topBins: BinAccumulator
        /// Class-wise bin sums, class-major: index k · B + b. (Class-wise ECE needs only the
        /// sums of p_k and of 1[y = k] per bin, not the counts.)
        var classProbabilitySums: [Double]
        var classHits: [Double]

        init(classCount: Int, binCount: Int) {
            topBins = BinAccumulator(binCount: binCount)
            classProbabilitySums = [Double](repeating: 0, count: classCount * binCount)
            classHits = [Double](repeating: 0, count: classCount * binCount)
        }

        mutating func merge(_ other: Totals) {
            correct += other.correct
            nll += other.nll
            brier += other.brier
            if let bad = other.firstBadSample, firstBadSample == nil { firstBadSample = bad }
            topBins.merge(other.topBins)
            for i in classProbabilitySums.indices {
                classProbabilitySums[i] += other.classProbabilitySums[i]
                classHits[i] += other.classHits[i]
            }
        }
    }

    static func compute<T: BinaryFloatingPoint>(
        _ logits: UnsafeBufferPointer<T>, classCount: Int, labels: [Int], binCount: Int, temperature: Double
    ) throws -> CalibrationMetrics {
        let n = try validate(logitCount: logits.count, classCount: classCount, labels: labels)
        guard binCount > 0 else { throw CalibrationError.invalidParameter("bin count \(binCount) must be positive") }
        guard temperature > 0, temperature.isFinite else {
            throw CalibrationError.invalidParameter("temperature \(temperature) must be positive and finite")
        }
        let k = classCount, bins = binCount
        let scale = 1 / temperature
        let firstUpperEdge = CalibrationBinning.equalWidthEdges(bins)[1]
        let chunkCount = (n + chunkRows - 1) / chunkRows
        var chunkTotals = [Totals](repeating: Totals(classCount: 0, binCount: 0), count: chunkCount)
        // Top-1 confidence and correctness of every sample, for the equal-count bins.
        var confidences = [ConfidenceOutcome](repeating: ConfidenceOutcome(confidence: 0, outcome: 0), count: n)

        labels.withUnsafeBufferPointer { labels in
            chunkTotals.withUnsafeMutableBufferPointer { totalsOut in
                confidences.withUnsafeMutableBufferPointer { confidenceOut in
                    DispatchQueue.concurrentPerform(iterations: chunkCount) { chunk in
                        let start = chunk * chunkRows, end = min(n, start + chunkRows)
                        var correct = 0, nll = 0.0, brier = 0.0
                        var firstBad: Int? = nil
                        var topBins = BinAccumulator(binCount: bins)
                        let p = UnsafeMutablePointer<Double>.allocate(capacity: k)
                        let classSums = UnsafeMutablePointer<Double>.allocate(capacity: k * bins)
                        let classHits = UnsafeMutablePointer<Double>.allocate(capacity: k * bins)
                        classSums.initialize(repeating: 0, count: k * bins)
                        classHits.initialize(repeating: 0, count: k * bins)
                        defer {
                            p.deallocate()
                            classSums.deallocate()
                            classHits.deallocate()
                        }
                        for i in start..<end {
                            let z = logits.baseAddress! + i * k
                            let row = softmaxRow(z, count: k, scale: scale, into: p)
                            guard row.isFinite else {
                                if firstBad == nil { firstBad = i }
                                continue
                            }
                            let y = labels[i]
                            let confidence = p[row.argmax]
                            let hit = row.argmax == y
                            if hit { correct += 1 }
                            nll += row.logSumExp - Double(z[y]) * scale
                            var squares = 0.0
                            for c in 0..<k {
                                let pc = p[c]
                                squares += pc * pc
                                // Most class probabilities are small: test the first bin before binning.
                                let bin = pc <= firstUpperEdge ? 0 : equalWidthBin(pc, binCount: bins)
                                classSums[c * bins + bin] += pc
                            }
                            classHits[y * bins + equalWidthBin(p[y], binCount: bins)] += 1
                            brier += squares - 2 * p[y] + 1
                            topBins.add(bin: equalWidthBin(confidence, binCount: bins), confidence: confidence, outcome: hit ? 1 : 0)
                            confidenceOut[i] = ConfidenceOutcome(confidence: confidence, outcome: hit ? 1 : 0)
                        }
                        var totals = Totals(classCount: k, binCount: bins)
                        totals.correct = correct
                        totals.nll = nll
                        totals.brier = brier
                        totals.firstBadSample = firstBad
                        totals.topBins = topBins
                        totals.classProbabilitySums = Array(UnsafeBufferPointer(start: classSums, count: k * bins))
                        totals.classHits = Array(UnsafeBufferPointer(start: classHits, count: k * bins))
                        totalsOut[chunk] = totals
                    }
                }
            }
        }

        var totals = Totals(classCount: k, binCount: bins)
        for chunk in chunkTotals { totals.merge(chunk) }
        if let bad = totals.firstBadSample { throw CalibrationError.nonFiniteLogit(sample: bad) }

        let edges = CalibrationBinning.equalWidthEdges(bins)
        let topBins = totals.topBins.bins(edges: edges)
        var classwise = [Double](repeating: 0, count: k)
        for c in 0..<k {
            var sum = 0.0
            for b in 0..<bins {
                sum += abs(totals.classHits[c * bins + b] - totals.classProbabilitySums[c * bins + b])
            }
            classwise[c] = sum / Double(n)
        }
        confidences.sort { $0.confidence < $1.confidence }
        let adaptive = equalCountBins(sorted: confidences, binCount: bins)

        let count = Double(n)
        let accuracy = Double(totals.correct) / count
        let nll = totals.nll / count
        let brier = totals.brier / count
        let ece = totals.topBins.expectedError(total: n)
        let mce = CalibrationBinning.maximumError(topBins)
        let adaece = CalibrationBinning.expectedError(adaptive)
        let cece = classwise.reduce(0, +) / Double(k)
        return CalibrationMetrics(
            sampleCount: n, classCount: k, binCount: bins, temperature: temperature,
            accuracy: accuracy, nll: nll, brier: brier, ece: ece, mce: mce, adaece: adaece, cece: cece,
            bins: topBins, adaptiveBins: adaptive, classwiseECE: classwise)
    }
}

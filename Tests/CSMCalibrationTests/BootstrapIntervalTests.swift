import CSMCalibration
import CSMTestSupport
import XCTest

final class BootstrapIntervalTests: XCTestCase {
    /// Confidences uniform in [0.1, 1] whose outcomes come true with probability
    /// `truth · confidence` (truth 1: calibrated; below 1: over-confident).
    func synthetic(_ n: Int, truth: Double, seed: UInt64) -> (confidences: [Double], outcomes: [Double]) {
        var rng = SeededGenerator(seed: seed)
        var confidences: [Double] = [], outcomes: [Double] = []
        for _ in 0..<n {
            let c = Double.random(in: 0.1...1, using: &rng)
            confidences.append(c)
            outcomes.append(Double.random(in: 0..<1, using: &rng) < truth * c ? 1 : 0)
        }
        return (confidences, outcomes)
    }

    /// The same draws, the resampled sets built one by one and binned by
    /// `CalibrationBinning.equalWidth`, the percentiles by numpy's formula written out.
    func testMatchesADirectLoopWithTheSameDraws() throws {
        let (c, o) = synthetic(700, truth: 0.9, seed: 1)
        let resamples = 57, seed: UInt64 = 42, bins = 15
        var reference: [Double] = []
        for r in 0..<resamples {
            var random = BootstrapRandom(seed: seed, resample: r)
            var rc: [Double] = [], ro: [Double] = []
            for _ in 0..<c.count {
                let i = random.next(below: c.count)
                rc.append(c[i])
                ro.append(o[i])
            }
            reference.append(CalibrationBinning.expectedError(try CalibrationBinning.equalWidth(confidences: rc, outcomes: ro, binCount: bins)))
        }
        let fast = try BootstrapInterval.resampledECE(confidences: c, outcomes: o, binCount: bins, resamples: resamples, seed: seed)
        XCTAssertEqual(fast.count, resamples)
        for (a, b) in zip(fast, reference) { XCTAssertEqual(a, b, accuracy: 1e-12) }

        let sorted = reference.sorted()
        func numpyPercentile(_ q: Double) -> Double {
            let h = Double(sorted.count - 1) * q
            let lo = Int(floor(h)), hi = Int(ceil(h))
            return sorted[lo] + (h - floor(h)) * (sorted[hi] - sorted[lo])
        }
        let interval = try BootstrapInterval.ece(confidences: c, outcomes: o, binCount: bins, resamples: resamples, seed: seed)
        XCTAssertEqual(interval.lower, numpyPercentile(0.025), accuracy: 1e-12)
        XCTAssertEqual(interval.upper, numpyPercentile(0.975), accuracy: 1e-12)
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925].
        XCTAssertEqual(BootstrapInterval.percentile(sorted: [1, 2, 3, 4], 0.025), 1.075, accuracy: 1e-12)
        XCTAssertEqual(BootstrapInterval.percentile(sorted: [1, 2, 3, 4], 0.975), 3.925, accuracy: 1e-12)
    }

    func testDeterministicAndSeeded() throws {
        let (c, o) = synthetic(500, truth: 0.9, seed: 2)
        let a = try BootstrapInterval.ece(confidences: c, outcomes: o, resamples: 100, seed: 7)
        let b = try BootstrapInterval.ece(confidences: c, outcomes: o, resamples: 100, seed: 7)
        let other = try BootstrapInterval.ece(confidences: c, outcomes: o, resamples: 100, seed: 8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.lower, other.lower)
        // Draws are uniform: every index is drawn about equally often.
        var random = BootstrapRandom(seed: 3, resample: 0)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[random.next(below: 7)] += 1 }
        for count in counts { XCTAssertEqual(Double(count), 10_000, accuracy: 400) }
    }

    /// The interval holds the point estimate of a large over-confident set, and narrows as
    /// the set grows (about 1/√N: ten times the samples, about a third of the width).
    func testContainsThePointEstimateAndShrinksWithN() throws {
        var widths: [Double] = []
        for n in [2_000, 20_000] {
            let (c, o) = synthetic(n, truth: 0.9, seed: 4)
            let point = CalibrationBinning.expectedError(try CalibrationBinning.equalWidth(confidences: c, outcomes: o, binCount: 15))
            let interval = try BootstrapInterval.ece(confidences: c, outcomes: o, resamples: 400, seed: 0)
            XCTAssertLessThanOrEqual(interval.lower, point, "n = \(n)")
            XCTAssertGreaterThanOrEqual(interval.upper, point, "n = \(n)")
            XCTAssertGreaterThan(interval.lower, 0.02, "n = \(n): the miscalibration (about 0.055) is visible")
            widths.append(interval.upper - interval.lower)
        }
        XCTAssertLessThan(widths[1], widths[0] / 2)
        XCTAssertGreaterThan(widths[1], widths[0] / 6)
    }

    func testLogitsPathMatchesTheMetricsAndRefusesBadInput() throws {
        let (logits, labels) = syntheticLogits(samples: 400, classes: 5, sharpness: 2, seed: 5)
        let metrics = try CalibrationMetrics(logits: logits, classCount: 5, labels: labels, binCount: 10, temperature: 1.5)
        let interval = try BootstrapInterval.ece(logits: logits, classCount: 5, labels: labels, binCount: 10, temperature: 1.5,
                                                 resamples: 300, seed: 1)
        XCTAssertLessThan(interval.lower, metrics.ece + 0.02)
        XCTAssertGreaterThan(interval.upper, metrics.ece)
        XCTAssertThrowsError(try BootstrapInterval.ece(logits: logits, classCount: 5, labels: labels, resamples: 0, seed: 0))
        XCTAssertThrowsError(try BootstrapInterval.ece(logits: logits, classCount: 5, labels: labels, binCount: 0, resamples: 5, seed: 0))
        XCTAssertThrowsError(try BootstrapInterval.ece(logits: logits, classCount: 4, labels: labels, resamples: 5, seed: 0))
        var bad = logits
        bad[7] = .nan
        XCTAssertThrowsError(try BootstrapInterval.ece(logits: bad, classCount: 5, labels: labels, resamples: 5, seed: 0)) {
            XCTAssertEqual($0 as? CalibrationError, .nonFiniteLogit(sample: 1))
        }
    }
}

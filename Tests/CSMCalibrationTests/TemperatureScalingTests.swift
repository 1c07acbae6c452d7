import CSMCalibration
import CSMFormats
import CSMTestSupport
import Foundation
import XCTest

final class TemperatureScalingTests: XCTestCase {
    /// Samples whose labels are drawn from softmax(z), reported with logits `factor`·z: the
    /// NLL-optimal temperature of an infinite sample is exactly `factor`.
    private func overconfident(samples: Int, classes: Int, factor: Double, seed: UInt64) -> ([Double], [Int]) {
        var rng = SeededGenerator(seed: seed)
        var logits: [Double] = [], labels: [Int] = []
        for _ in 0..<samples {
            let z = (0..<classes).map { _ in 1.5 * rng.normal() }
            let top = z.max()!
            let weights = z.map { exp($0 - top) }
            var u = Double.random(in: 0..<weights.reduce(0, +), using: &rng)
            var label = classes - 1
            for (k, w) in weights.enumerated() {
                if u < w { label = k; break }
                u -= w
            }
            labels.append(label)
            logits += z.map { $0 * factor }
        }
        return (logits, labels)
    }

    private func nll(_ logits: [Double], _ labels: [Int], _ k: Int, _ t: Double) throws -> Double {
        try TemperatureScaling.negativeLogLikelihood(logits: logits, classCount: k, labels: labels, temperature: t)
    }

    func testRecoversTheTemperatureOfAnOverconfidentModel() throws {
        let (logits, labels) = overconfident(samples: 20_000, classes: 5, factor: 2.5, seed: 11)
        let fit = try TemperatureScaling.fit(logits: logits, classCount: 5, labels: labels)
        XCTAssertEqual(fit.temperature, 2.5, accuracy: 0.1)
        XCTAssertFalse(fit.atBoundary)
        XCTAssertLessThanOrEqual(fit.evaluations, 12, "each evaluation is a pass over all logits")
        XCTAssertLessThan(fit.nllAfter, fit.nllBefore)
        XCTAssertEqual(fit.nllBefore, try nll(logits, labels, 5, 1), accuracy: 1e-12)
        XCTAssertEqual(fit.nllAfter, try nll(logits, labels, 5, fit.temperature), accuracy: 1e-12)

        let before = try CalibrationMetrics(logits: logits, classCount: 5, labels: labels)
        let after = try CalibrationMetrics(logits: logits, classCount: 5, labels: labels, temperature: fit.temperature)
        XCTAssertEqual(before.accuracy, after.accuracy, "temperature scaling keeps the predictions")
        XCTAssertLessThan(after.ece, before.ece / 3)
    }

    func testFindsTheMinimumPrecisely() throws {
        let (logits, labels) = overconfident(samples: 3000, classes: 7, factor: 0.6, seed: 3)
        let fit = try TemperatureScaling.fit(logits: logits, classCount: 7, labels: labels)
        // A dense scan of log T finds nothing lower, and the minimum is flat around T.
        var scanBest = Double.infinity
        for i in 0...400 {
            let t = exp(log(0.2) + Double(i) / 400 * (log(3.0) - log(0.2)))
            scanBest = min(scanBest, try nll(logits, labels, 7, t))
        }
        XCTAssertLessThanOrEqual(fit.nllAfter, scanBest + 1e-12)
        for factor in [1 - 1e-4, 1 + 1e-4] {
            XCTAssertGreaterThan(try nll(logits, labels, 7, fit.temperature * factor), fit.nllAfter)
        }
    }

    func testTheFixtureTemperature() throws {
        let file = try SafeTensorsFile(path: fixturePath("calibration/synthetic-3000x10.safetensors"))
        let logits = try file.floats("logits"), labels = try file.integers("labels")
        let fit = try TemperatureScaling.fit(logits: logits, classCount: 10, labels: labels)
        XCTAssertEqual(fit.nllBefore, 1.857949859512744, accuracy: 1e-6)
        for factor in [1 - 1e-5, 1 + 1e-5] {
            let nearby = try TemperatureScaling.negativeLogLikelihood(
                logits: logits, classCount: 10, labels: labels, temperature: fit.temperature * factor)
            XCTAssertGreaterThan(nearby, fit.nllAfter)
        }
    }

    func testSeparableDataPushesTemperatureToTheRangeEnd() throws {
        // Every sample right with a wide margin: the NLL keeps falling as T → 0.
        let logits: [Double] = [5, 0, 0, 5, 4, -1]
        let fit = try TemperatureScaling.fit(logits: logits, classCount: 2, labels: [0, 1, 0], range: 0.05...20)
        XCTAssertTrue(fit.atBoundary)
        XCTAssertEqual(fit.temperature, 0.05, accuracy: 1e-9)
    }

    func testRejectsBadRangesAndInputs() {
        XCTAssertThrowsError(try TemperatureScaling.fit(logits: [0, 1] as [Double], classCount: 2, labels: [0], range: 0...1))
        XCTAssertThrowsError(try TemperatureScaling.fit(logits: [0, 1] as [Double], classCount: 2, labels: [0], range: 2...2))
        XCTAssertThrowsError(try TemperatureScaling.fit(logits: [0, .nan] as [Double], classCount: 2, labels: [0])) {
            XCTAssertEqual($0 as? CalibrationError, .nonFiniteLogit(sample: 0))
        }
        XCTAssertThrowsError(try TemperatureScaling.negativeLogLikelihood(logits: [0, 1] as [Float], classCount: 2, labels: [0], temperature: -1))
    }

    func testScaledLogits() {
        XCTAssertEqual(TemperatureScaling.scaled(logits: [2, -4, 0], temperature: 2), [1, -2, 0])
    }
}

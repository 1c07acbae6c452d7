import CSMCalibration
import CSMTestSupport
import Foundation
import XCTest

final class LossesTests: XCTestCase {
    private let n = 6, k = 5

    private func randomInputs(seed: UInt64, scale: Double = 2) -> (logits: [Double], labels: [Int], targets: [Double]) {
        var rng = SeededGenerator(seed: seed)
        let logits = (0..<(n * k)).map { _ in scale * rng.normal() }
        let labels = (0..<n).map { _ in Int.random(in: 0..<k, using: &rng) }
        var targets: [Double] = []
        for _ in 0..<n {
            // A CSM-style soft label: mass λ on one class and 1 − λ on another.
            let a = Int.random(in: 0..<k, using: &rng), b = (a + Int.random(in: 1..<k, using: &rng)) % k
            let lambda = Double.random(in: 0...1, using: &rng)
            targets += (0..<k).map { $0 == a ? lambda : $0 == b ? 1 - lambda : 0 }
        }
        return (logits, labels, targets)
    }

    /// Asserts that `gradient` matches central differences of `value` to 1e-6 of its largest entry.
    private func assertGradient(
        _ gradient: [Double], of value: ([Double]) throws -> Double, at logits: [Double],
        _ message: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        XCTAssertEqual(gradient.count, logits.count, message, file: file, line: line)
        let h = 1e-5
        var worst = 0.0
        for i in logits.indices {
            var plus = logits, minus = logits
            plus[i] += h
            minus[i] -= h
            let numeric = (try value(plus) - value(minus)) / (2 * h)
            worst = max(worst, abs(numeric - gradient[i]))
        }
        let size = gradient.map(abs).max() ?? 0
        XCTAssertGreaterThan(size, 1e-4, "\(message): gradient vanishes, the check would be empty", file: file, line: line)
        XCTAssertLessThanOrEqual(worst, 1e-6 * size, "\(message): worst error \(worst), scale \(size)", file: file, line: line)
    }

    func testGradientsMatchFiniteDifferences() throws {
        for seed: UInt64 in 1...4 {
            let (z, y, t) = randomInputs(seed: seed)
            for reduction in LossReduction.allCases {
                let tag = "seed \(seed), \(reduction)"
                try assertGradient(
                    Losses.crossEntropy(logits: z, classCount: k, labels: y, reduction: reduction).gradient,
                    of: { try Losses.crossEntropy(logits: $0, classCount: self.k, labels: y, reduction: reduction).value },
                    at: z, "cross entropy, \(tag)")
                try assertGradient(
                    Losses.crossEntropy(logits: z, classCount: k, targets: t, reduction: reduction).gradient,
                    of: { try Losses.crossEntropy(logits: $0, classCount: self.k, targets: t, reduction: reduction).value },
                    at: z, "soft cross entropy, \(tag)")
                try assertGradient(
                    Losses.labelSmoothing(logits: z, classCount: k, labels: y, smoothing: 0.1, reduction: reduction).gradient,
                    of: { try Losses.labelSmoothing(logits: $0, classCount: self.k, labels: y, smoothing: 0.1, reduction: reduction).value },
                    at: z, "label smoothing, \(tag)")
                for gamma in [0.5, 1, 2, 3] {
                    try assertGradient(
                        Losses.focal(logits: z, classCount: k, labels: y, gamma: gamma, reduction: reduction).gradient,
                        of: { try Losses.focal(logits: $0, classCount: self.k, labels: y, gamma: gamma, reduction: reduction).value },
                        at: z, "focal γ \(gamma), \(tag)")
                }
            }
        }
    }

    func testBSCEGRAGradientTreatsTheWeightAsConstant() throws {
        for seed: UInt64 in 5...7 {
            let (z, y, _) = randomInputs(seed: seed)
            for (gamma, norm) in [(2.0, 2.0), (1.0, 1.0), (3.0, Double.infinity), (0.5, 2.0)] {
                for reduction in LossReduction.allCases {
                    let loss = try Losses.bsceGRA(logits: z, classCount: k, labels: y, gamma: gamma, norm: norm, reduction: reduction)
                    // Weights frozen at z: the loss as a function of the logits is Σ w_i · CE_i.
                    let w = try Losses.bsceGRAWeights(logits: z, classCount: k, labels: y, gamma: gamma, norm: norm)
                    let divisor = reduction == .mean ? Double(n) : 1
                    try assertGradient(loss.gradient, of: { logits in
                        let ce = try Losses.crossEntropy(logits: logits, classCount: self.k, labels: y).perSample
                        return zip(w, ce).reduce(0.0) { $0 + $1.0 * $1.1 } / divisor
                    }, at: z, "BSCE-GRA γ \(gamma), norm \(norm), \(reduction), seed \(seed)")
                    let ce = try Losses.crossEntropy(logits: z, classCount: k, labels: y, reduction: reduction)
                    XCTAssertEqual(loss.value, zip(w, ce.perSample).reduce(0.0) { $0 + $1.0 * $1.1 } / divisor, accuracy: 1e-12)
                }
            }
        }
    }

    func testBSCEGRADefaultWeightIsTheBrierScore() throws {
        let (z, y, _) = randomInputs(seed: 8)
        let weights = try Losses.bsceGRAWeights(logits: z, classCount: k, labels: y)
        let p = try Softmax.probabilities(logits: z, classCount: k)
        for i in 0..<n {
            let brier = (0..<k).reduce(0.0) { $0 + pow(p[i * k + $1] - ($1 == y[i] ? 1 : 0), 2) }
            XCTAssertEqual(weights[i], brier, accuracy: 1e-14)
        }
        let maxNorm = try Losses.bsceGRAWeights(logits: z, classCount: k, labels: y, gamma: 1, norm: .infinity)
        for i in 0..<n {
            let largest = (0..<k).map { abs(p[i * k + $0] - ($0 == y[i] ? 1 : 0)) }.max()!
            XCTAssertEqual(maxNorm[i], largest, accuracy: 1e-14)
        }
    }

    func testCSMLossGradientsMatchFiniteDifferences() throws {
        let (real, labels, _) = randomInputs(seed: 9)
        let (mixed, _, targets) = randomInputs(seed: 10)
        for reduction in LossReduction.allCases {
            for weight in [1.0, 0.3] {
                let loss = try Losses.csm(
                    realLogits: real, realLabels: labels, mixedLogits: mixed, mixedTargets: targets,
                    classCount: k, mixedWeight: weight, reduction: reduction)
                try assertGradient(loss.realGradient, of: {
                    try Losses.csm(realLogits: $0, realLabels: labels, mixedLogits: mixed, mixedTargets: targets,
                                   classCount: self.k, mixedWeight: weight, reduction: reduction).value
                }, at: real, "CSM real part, \(reduction), weight \(weight)")
                try assertGradient(loss.mixedGradient, of: {
                    try Losses.csm(realLogits: real, realLabels: labels, mixedLogits: $0, mixedTargets: targets,
                                   classCount: self.k, mixedWeight: weight, reduction: reduction).value
                }, at: mixed, "CSM mixed part, \(reduction), weight \(weight)")
            }
        }
    }

    func testCSMLossIsCrossEntropyPlusSquaredDistance() throws {
        let (real, labels, _) = randomInputs(seed: 12)
        let (mixed, _, targets) = randomInputs(seed: 13)
        let loss = try Losses.csm(realLogits: real, realLabels: labels, mixedLogits: mixed, mixedTargets: targets, classCount: k)
        let ce = try Losses.crossEntropy(logits: real, classCount: k, labels: labels).value
        let p = try Softmax.probabilities(logits: mixed, classCount: k)
        let l2 = zip(p, targets).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(n)
        XCTAssertEqual(loss.crossEntropy, ce, accuracy: 1e-14)
        XCTAssertEqual(loss.mixing, l2, accuracy: 1e-14)
        XCTAssertEqual(loss.value, ce + l2, accuracy: 1e-14)
        // Mixed samples only.
        let onlyMixed = try Losses.csm(realLogits: [], realLabels: [], mixedLogits: mixed, mixedTargets: targets, classCount: k)
        XCTAssertEqual(onlyMixed.value, l2, accuracy: 1e-14)
        XCTAssertTrue(onlyMixed.realGradient.isEmpty)
    }

    func testCSMBSCEGRAIsBSCEGRAPlusSquaredDistance() throws {
        let (real, labels, _) = randomInputs(seed: 14)
        let (mixed, _, targets) = randomInputs(seed: 15)
        for reduction in LossReduction.allCases {
            let loss = try Losses.csmBSCEGRA(realLogits: real, realLabels: labels, mixedLogits: mixed, mixedTargets: targets,
                                             classCount: k, gamma: 2, norm: 2, reduction: reduction)
            let bsce = try Losses.bsceGRA(logits: real, classCount: k, labels: labels, gamma: 2, norm: 2, reduction: reduction)
            let csm = try Losses.csm(realLogits: real, realLabels: labels, mixedLogits: mixed, mixedTargets: targets,
                                     classCount: k, reduction: reduction)
            XCTAssertEqual(loss.crossEntropy, bsce.value, accuracy: 1e-14)
            XCTAssertEqual(loss.mixing, csm.mixing, accuracy: 1e-14)
            XCTAssertEqual(loss.value, bsce.value + csm.mixing, accuracy: 1e-14)
            XCTAssertEqual(loss.realGradient, bsce.gradient)
            XCTAssertEqual(loss.mixedGradient, csm.mixedGradient)
        }
        XCTAssertThrowsError(try Losses.csmBSCEGRA(realLogits: real, realLabels: labels, mixedLogits: mixed,
                                                   mixedTargets: targets, classCount: k, gamma: -1))
    }

    func testFocalAndBSCEGRAReduceToCrossEntropyAtGammaZero() throws {
        for seed: UInt64 in 20...22 {
            let (z, y, _) = randomInputs(seed: seed, scale: 4)
            for reduction in LossReduction.allCases {
                let ce = try Losses.crossEntropy(logits: z, classCount: k, labels: y, reduction: reduction)
                let focal = try Losses.focal(logits: z, classCount: k, labels: y, gamma: 0, reduction: reduction)
                let bsce = try Losses.bsceGRA(logits: z, classCount: k, labels: y, gamma: 0, reduction: reduction)
                for other in [focal, bsce] {
                    XCTAssertEqual(other.value, ce.value, accuracy: 1e-14)
                    for (a, b) in zip(other.gradient, ce.gradient) { XCTAssertEqual(a, b, accuracy: 1e-15) }
                }
            }
        }
    }

    func testRelationsBetweenLosses() throws {
        let (z, y, _) = randomInputs(seed: 30)
        let ce = try Losses.crossEntropy(logits: z, classCount: k, labels: y)
        // Soft cross entropy with one-hot targets is the hard one.
        let oneHot = (0..<(n * k)).map { y[$0 / k] == $0 % k ? 1.0 : 0 }
        let soft = try Losses.crossEntropy(logits: z, classCount: k, targets: oneHot)
        XCTAssertEqual(soft.value, ce.value, accuracy: 1e-14)
        // Label smoothing 0 is cross entropy; ε is soft CE with the smoothed target.
        XCTAssertEqual(try Losses.labelSmoothing(logits: z, classCount: k, labels: y, smoothing: 0).value, ce.value, accuracy: 1e-14)
        let smoothed = oneHot.map { 0.8 * $0 + 0.2 / Double(k) }
        XCTAssertEqual(
            try Losses.labelSmoothing(logits: z, classCount: k, labels: y, smoothing: 0.2).value,
            try Losses.crossEntropy(logits: z, classCount: k, targets: smoothed).value, accuracy: 1e-14)
        // Sum is N × mean; focal is below cross entropy for γ > 0.
        let sum = try Losses.crossEntropy(logits: z, classCount: k, labels: y, reduction: .sum)
        XCTAssertEqual(sum.value, ce.value * Double(n), accuracy: 1e-12)
        let focal = try Losses.focal(logits: z, classCount: k, labels: y, gamma: 2)
        XCTAssertLessThan(focal.value, ce.value)
        XCTAssertEqual(ce.perSample.reduce(0, +) / Double(n), ce.value, accuracy: 1e-14)
    }

    func testLargeLogitsStayFinite() throws {
        let z: [Double] = [800, -800, 0, 0, 1000, -1000]
        for loss in [
            try Losses.crossEntropy(logits: z, classCount: 3, labels: [0, 2]),
            try Losses.focal(logits: z, classCount: 3, labels: [0, 2], gamma: 0.5),
            try Losses.bsceGRA(logits: z, classCount: 3, labels: [0, 2]),
        ] {
            XCTAssertTrue(loss.value.isFinite)
            XCTAssertTrue(loss.gradient.allSatisfy(\.isFinite))
        }
        // Sample 0 is right with margin 800 (loss ≈ 0); sample 1 has −log p = 2000.
        XCTAssertEqual(try Losses.crossEntropy(logits: z, classCount: 3, labels: [0, 2]).value, 1000, accuracy: 1e-9)
    }

    func testRejectsBadInputs() {
        XCTAssertThrowsError(try Losses.crossEntropy(logits: [0, 1, 2], classCount: 2, labels: [0]))
        XCTAssertThrowsError(try Losses.crossEntropy(logits: [0, 1], classCount: 2, labels: [2]))
        XCTAssertThrowsError(try Losses.crossEntropy(logits: [0, 1], classCount: 2, targets: [1]))
        XCTAssertThrowsError(try Losses.focal(logits: [0, 1], classCount: 2, labels: [0], gamma: -1))
        XCTAssertThrowsError(try Losses.labelSmoothing(logits: [0, 1], classCount: 2, labels: [0], smoothing: 1.5))
        XCTAssertThrowsError(try Losses.bsceGRA(logits: [0, 1], classCount: 2, labels: [0], norm: 0.5))
        XCTAssertThrowsError(try Losses.crossEntropy(logits: [.nan, 1], classCount: 2, labels: [0]))
        XCTAssertThrowsError(try Losses.csm(realLogits: [0, 1], realLabels: [], mixedLogits: [], mixedTargets: [], classCount: 2))
    }
}

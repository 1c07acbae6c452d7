import CSMLoader
import CSMNumerics
import CSMTraining
import XCTest

final class OptimizerTests: XCTestCase {
    /// torch.optim.SGD's update written out literally in Float64 (dampening 0).
    private func referenceSGD(_ theta: inout [Double], _ buffer: inout [Double]?, gradient: [Double], lr: Double,
                              momentum: Double, decay: Double, nesterov: Bool) {
        var d = zip(gradient, theta).map { $0 + decay * $1 }
        if momentum != 0 {
            if let b = buffer { buffer = zip(b, d).map { momentum * $0 + $1 } } else { buffer = d }
            d = nesterov ? zip(d, buffer!).map { $0 + momentum * $1 } : buffer!
        }
        theta = zip(theta, d).map { $0 - lr * $1 }
    }

    func testSGDMatchesTorchFormulaOverSeveralSteps() {
        for (momentum, decay, nesterov) in [(0.9, 5e-4, false), (0.9, 1e-2, true), (0.0, 1e-3, false), (0.5, 0.0, false)] {
            let p = Parameter(name: "w", shape: [5], value: [0.3, -1.2, 2.0, 0.01, -0.5])
            var theta = p.value.map(Double.init)
            var buffer: [Double]?
            let sgd = SGD(parameterCount: 1, momentum: Float(momentum), weightDecay: Float(decay), nesterov: nesterov)
            for step in 0..<4 {
                let gradient = (0..<5).map { Float(sin(Double(step * 5 + $0) * 1.3)) }
                p.gradient = gradient
                let lr = 0.1 / Double(step + 1)
                sgd.step([p], lr: Float(lr))
                referenceSGD(&theta, &buffer, gradient: gradient.map(Double.init), lr: lr, momentum: momentum, decay: decay,
                             nesterov: nesterov)
                for i in 0..<5 {
                    XCTAssertEqual(Double(p.value[i]), theta[i], accuracy: 1e-6 * max(1, abs(theta[i])),
                                   "momentum \(momentum), decay \(decay), nesterov \(nesterov), step \(step)")
                }
            }
            XCTAssertEqual(sgd.momentumBuffers[0].isEmpty, momentum == 0)
        }
    }

    func testMomentumRestoreContinuesTheRun() throws {
        let a = Parameter(name: "w", shape: [3], value: [1, 2, 3])
        let b = Parameter(name: "w", shape: [3], value: [1, 2, 3])
        let first = SGD(parameterCount: 1, momentum: 0.9, weightDecay: 1e-3)
        a.gradient = [0.5, -0.25, 1]
        first.step([a], lr: 0.1)
        b.value = a.value
        let second = SGD(parameterCount: 1, momentum: 0.9, weightDecay: 1e-3)
        try second.restore(momentumBuffers: first.momentumBuffers, for: [b])
        a.gradient = [0.1, 0.2, 0.3]
        b.gradient = a.gradient
        first.step([a], lr: 0.1)
        second.step([b], lr: 0.1)
        XCTAssertEqual(a.value, b.value)
        XCTAssertThrowsError(try second.restore(momentumBuffers: [[1, 2]], for: [b]))
    }

    func testGradientClippingAsTorch() {
        let a = Parameter(name: "a", shape: [2], value: [0, 0])
        let b = Parameter(name: "b", shape: [1], value: [0])
        a.gradient = [3, 4]
        b.gradient = [12]
        let norm = clipGradientNorm([a, b], maxNorm: 2)
        XCTAssertEqual(norm, 13, accuracy: 1e-12)
        let coefficient = Float(2 / (13 + 1e-6))
        XCTAssertEqual(a.gradient, [3 * coefficient, 4 * coefficient])
        XCTAssertEqual(b.gradient, [12 * coefficient])
        // Below the threshold nothing changes.
        a.gradient = [0.3, 0.4]
        b.gradient = [0]
        XCTAssertEqual(clipGradientNorm([a, b], maxNorm: 2), 0.5, accuracy: 1e-7)
        XCTAssertEqual(a.gradient, [0.3, 0.4])
    }

    func testMultistepCosineAndWarmup() {
        let multistep = LearningRateSchedule(kind: .multistep, baseRate: 0.1, milestones: [2, 4], gamma: 0.1, stepsPerEpoch: 10,
                                             totalSteps: 60)
        XCTAssertEqual(multistep.rate(step: 0), 0.1, accuracy: 1e-15)
        XCTAssertEqual(multistep.rate(step: 19), 0.1, accuracy: 1e-15)
        XCTAssertEqual(multistep.rate(step: 20), 0.01, accuracy: 1e-15)
        XCTAssertEqual(multistep.rate(step: 39), 0.01, accuracy: 1e-15)
        XCTAssertEqual(multistep.rate(step: 40), 0.001, accuracy: 1e-15)
        let cosine = LearningRateSchedule(kind: .cosine, baseRate: 0.2, stepsPerEpoch: 10, totalSteps: 100)
        XCTAssertEqual(cosine.rate(step: 0), 0.2, accuracy: 1e-15)
        XCTAssertEqual(cosine.rate(step: 50), 0.1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(step: 25), 0.1 * (1 + cos(Double.pi / 4)), accuracy: 1e-12)
        let warm = LearningRateSchedule(kind: .cosine, baseRate: 0.2, warmupSteps: 4, stepsPerEpoch: 10, totalSteps: 100)
        XCTAssertEqual(warm.rate(step: 0), 0.05 * cosine.rate(step: 0) / 0.2, accuracy: 1e-12)
        XCTAssertEqual(warm.rate(step: 3), cosine.rate(step: 3), accuracy: 1e-15)
        XCTAssertEqual(warm.rate(step: 4), cosine.rate(step: 4), accuracy: 1e-15)
    }
}

/// examples/pytorch/train.py draws the split, the order, the crops and the mixed partners with a
/// port of LoaderRandom; these values are pinned on both sides (python/tests/test_train_torch.py).
final class LoaderRandomPinTests: XCTestCase {
    func testValuesThePythonTwinReproduces() {
        var random = LoaderRandom(7, 3, 11)
        XCTAssertEqual([random.next(), random.next(), random.next()], [0xAEAA_7F27_241D_9E13, 0x8388_1DCA_A83A_352B, 0xF70C_1FF7_19F4_1974])
        var split = LoaderRandom(0, 0x5641_4C49_4441_5445)
        XCTAssertEqual(split.permutation(10), [0, 8, 4, 1, 5, 6, 3, 2, 9, 7])
        var order = LoaderRandom(5, 2, 0x5348_5546)
        XCTAssertEqual(order.permutation(12), [2, 3, 4, 7, 11, 10, 9, 0, 5, 8, 6, 1])
    }
}

import CSMFormats
import CSMModels
import CSMNumerics
import CSMTraining
import Foundation
import XCTest

final class TrainerTests: XCTestCase {
    var fixtures: TrainingFixtures!

    override func setUpWithError() throws { fixtures = try TrainingFixtures() }
    override func tearDown() { fixtures.remove() }

    private func configuration(_ real: String, mixed: String? = nil, loss: TrainingLoss.Kind = .ce, epochs: Int = 3,
                               batch: Int = 16, validation: Double = 0.2, augment: Bool = true, maxSteps: Int? = nil,
                               lr: Double = 0.05) -> TrainingConfiguration {
        TrainingConfiguration(
            real: real, mixed: mixed, architecture: "linear", loss: TrainingLoss(kind: loss),
            data: TrainingDataOptions(batchSize: batch, validationFraction: validation, seed: 7, augment: augment),
            epochs: epochs, maxSteps: maxSteps, learningRate: lr, momentum: 0.9, weightDecay: 5e-4, clip: 2,
            keep: validation > 0 ? .best : .last)
    }

    private func trainer(_ config: TrainingConfiguration, checkpoint: String, threads: Int = 2) throws -> Trainer {
        let data = try TrainingData(realPath: config.real, mixedPath: config.mixed, options: config.data, threads: threads)
        let network = LinearClassifier(input: data.input, classNames: data.classNames, seed: config.data.seed)
        return try Trainer(network: network, data: data, configuration: config, checkpointPath: checkpoint)
    }

    func testLinearClassifierLearnsTheFixture() throws {
        let real = try fixtures.writeReal(count: 150)
        // No augmentation: a crop of up to 4 pixels would move the 2-row bands of these 6×6 images.
        let run = try trainer(configuration(real, epochs: 4, augment: false), checkpoint: fixtures.directory + "/ckpt")
        var records: [EpochRecord] = []
        try run.run(onEpoch: { records.append($0) })
        XCTAssertEqual(records.map(\.epoch), [1, 2, 3, 4])
        XCTAssertEqual(run.step, 4 * 8)  // 120 training images in batches of 16
        XCTAssertLessThan(records.last!.trainLoss, records.first!.trainLoss)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(records.last!.validationAccuracy), 0.9)
    }

    func testSplitAndBatchesArePureFunctionsOfSeedAndEpoch() throws {
        let real = try fixtures.writeReal(count: 50)
        let mixed = try fixtures.writeMixed(groups: 6)
        let config = configuration(real, mixed: mixed, loss: .csm)
        let one = try TrainingData(realPath: real, mixedPath: mixed, options: config.data, threads: 1)
        let two = try TrainingData(realPath: real, mixedPath: mixed, options: config.data, threads: 2)
        XCTAssertEqual(one.validationIndices.count, 10)
        XCTAssertEqual(Set(one.validationIndices).intersection(one.trainIndices), [])
        XCTAssertEqual(one.trainIndices, two.trainIndices)
        var other = config.data
        other.seed = 8
        XCTAssertNotEqual(try TrainingData(realPath: real, mixedPath: nil, options: other).validationIndices, one.validationIndices)
        for epoch in 0..<2 {
            let a = one.batches(epoch: epoch), b = two.batches(epoch: epoch)
            var count = 0
            while let x = try a.next() {
                let y = try XCTUnwrap(try b.next())
                XCTAssertEqual(x.images.values, y.images.values)
                XCTAssertEqual(x.realLabels, y.realLabels)
                XCTAssertEqual(x.mixedTargets, y.mixedTargets)
                XCTAssertEqual(x.mixedCount, 2 * x.realCount)  // endpoint + one interior sample each
                count += 1
            }
            XCTAssertEqual(count, 3)
            XCTAssertNil(try b.next())
        }
        let e0 = try XCTUnwrap(try one.batches(epoch: 0).next()), e1 = try XCTUnwrap(try one.batches(epoch: 1).next())
        XCTAssertNotEqual(e0.images.values, e1.images.values)
    }

    /// One full-batch step without augmentation: the weights are w − lr·(∇ + λ·w), with ∇ the
    /// cross-entropy gradient worked out here in Float64 (momentum's first step is the gradient).
    func testOneFullBatchStepIsOneSGDStep() throws {
        let real = try fixtures.writeReal(count: 12)
        let config = configuration(real, epochs: 1, batch: 12, validation: 0, augment: false, maxSteps: 1, lr: 0.1)
        let run = try trainer(config, checkpoint: fixtures.directory + "/ckpt")
        let w0 = run.network.parameters.map { $0.value.map(Double.init) }
        let batch = try XCTUnwrap(try run.data.batches(epoch: 0).next())
        XCTAssertEqual(batch.realCount, 12)
        try run.run()
        let x = batch.images.values.map(Double.init), d = 36, k = 3
        var gw = [Double](repeating: 0, count: k * d), gb = [Double](repeating: 0, count: k)
        for n in 0..<12 {
            var z = (0..<k).map { c in w0[1][c] + (0..<d).reduce(0.0) { $0 + w0[0][c * d + $1] * x[n * d + $1] } }
            let top = z.max()!
            z = z.map { exp($0 - top) }
            let sum = z.reduce(0, +)
            for c in 0..<k {
                let g = (z[c] / sum - (c == batch.realLabels[n] ? 1 : 0)) / 12
                gb[c] += g
                for j in 0..<d { gw[c * d + j] += g * x[n * d + j] }
            }
        }
        var g = [gw, gb]
        let norm = g.joined().reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        if norm > 2 { g = g.map { $0.map { $0 * 2 / (norm + 1e-6) } } }
        for (p, (w, grad)) in zip(run.network.parameters, zip(w0, g)) {
            for i in w.indices {
                let expected = w[i] - 0.1 * (grad[i] + 5e-4 * w[i])
                XCTAssertEqual(Double(p.value[i]), expected, accuracy: 1e-5 * max(1, abs(expected)), "\(p.name)[\(i)]")
            }
        }
    }

    func testResumeEndsWithTheSameBytes() throws {
        let real = try fixtures.writeReal(count: 90)
        let mixed = try fixtures.writeMixed(groups: 6)
        let config = configuration(real, mixed: mixed, loss: .csm, epochs: 3)
        let straight = try trainer(config, checkpoint: fixtures.directory + "/a.ckpt")
        try straight.run()
        try straight.writeModel(to: fixtures.directory + "/a.safetensors")

        struct Interrupted: Error {}
        let first = try trainer(config, checkpoint: fixtures.directory + "/b.ckpt")
        XCTAssertThrowsError(try first.run(onEpoch: { if $0.epoch == 2 { throw Interrupted() } }))
        let second = try trainer(config, checkpoint: fixtures.directory + "/b.ckpt", threads: 1)
        XCTAssertTrue(second.resumed)
        XCTAssertEqual(second.epochsDone, 2)
        try second.run()
        try second.writeModel(to: fixtures.directory + "/b.safetensors")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fixtures.directory + "/a.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: fixtures.directory + "/b.safetensors")))

        var changed = config
        changed.learningRate = 0.2
        XCTAssertThrowsError(try trainer(changed, checkpoint: fixtures.directory + "/b.ckpt")) { error in
            XCTAssertTrue("\(error)".contains("learningRate"), "\(error)")
        }
    }

    /// A ResNet's batch-norm running statistics and batches tracked come back from the
    /// checkpoint too: interrupted after epoch 1 and resumed, it ends with the same bytes.
    func testResNetResumeEndsWithTheSameBytes() throws {
        let real = try fixtures.writeReal(count: 40)
        let mixed = try fixtures.writeMixed(groups: 3)
        var config = configuration(real, mixed: mixed, loss: .csmBSCEGRA, epochs: 2, batch: 8)
        config.keep = .last   // the epoch after the interruption is the one compared
        func resnet(_ checkpoint: String) throws -> Trainer {
            let data = try TrainingData(realPath: real, mixedPath: mixed, options: config.data)
            let architecture = ResNetArchitecture(block: .basic, layers: [1, 1], widths: [4, 8], stem: .cifar, inputChannels: 1,
                                                  numClasses: 3)
            let network = TrainableResNet(architecture: architecture, input: data.input, classNames: data.classNames, seed: 3)
            return try Trainer(network: network, data: data, configuration: config, checkpointPath: checkpoint)
        }
        let straight = try resnet(fixtures.directory + "/a.ckpt")
        try straight.run()
        XCTAssertEqual(straight.network.batchesTracked, straight.step)
        try straight.writeModel(to: fixtures.directory + "/a.safetensors")

        struct Interrupted: Error {}
        XCTAssertThrowsError(try resnet(fixtures.directory + "/b.ckpt").run(onEpoch: { _ in throw Interrupted() }))
        let resumed = try resnet(fixtures.directory + "/b.ckpt")
        XCTAssertEqual(resumed.epochsDone, 1)
        try resumed.run()
        try resumed.writeModel(to: fixtures.directory + "/b.safetensors")
        XCTAssertEqual(FileManager.default.contents(atPath: fixtures.directory + "/a.safetensors"),
                       FileManager.default.contents(atPath: fixtures.directory + "/b.safetensors"))
    }

    func testKeepsTheBestEpoch() throws {
        let real = try fixtures.writeReal(count: 60)
        let run = try trainer(configuration(real, epochs: 3), checkpoint: fixtures.directory + "/ckpt")
        try run.run()
        let best = try XCTUnwrap(run.best)
        XCTAssertEqual(best.accuracy, run.history.compactMap(\.validationAccuracy).max())
        try run.writeModel(to: fixtures.directory + "/out.safetensors")
        let saved = try LinearClassifier(path: fixtures.directory + "/out.safetensors")
        XCTAssertEqual(saved.parameters.map(\.value), best.state)
        XCTAssertEqual(saved.classNames, TrainingFixtures.names(3))
        let file = try SafeTensorsFile(path: fixtures.directory + "/out.safetensors")
        XCTAssertTrue(file.metadata["training"]?.contains("\"kept_epoch\":\(best.epoch)") ?? false)
    }

    func testNonFiniteLossStopsWithEpochAndStep() throws {
        let real = try fixtures.writeReal(count: 60)
        var config = configuration(real, epochs: 3, lr: 1e30)
        config.clip = 0
        let run = try trainer(config, checkpoint: fixtures.directory + "/ckpt")
        XCTAssertThrowsError(try run.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("training stopped") && text.contains("epoch 1, step"), text)
        }
    }

    func testBadInputIsRefused() throws {
        let real = try fixtures.writeReal(count: 4)
        let mixed = try fixtures.writeMixed(groups: 2, pairs: [(0, 1)])
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "no error"
        }
        // 4 samples × 0.1 rounds to an empty validation split.
        XCTAssertTrue(message { _ = try trainer(configuration(real, validation: 0.1), checkpoint: "/nonexistent") }
            .contains("validation split is empty"))
        // Class 2 has no trajectory.
        let real30 = try fixtures.writeReal("real30.h5", count: 30)
        let unpaired = message { _ = try trainer(configuration(real30, mixed: mixed, loss: .csm), checkpoint: "/nonexistent") }
        XCTAssertTrue(unpaired.contains("class 2 (class2)") && unpaired.contains("--skip-unpaired"), unpaired)
        var skip = configuration(real30, mixed: mixed, loss: .csm)
        skip.data.skipUnpaired = true
        let run = try trainer(skip, checkpoint: fixtures.directory + "/skip.ckpt")
        XCTAssertEqual(run.data.unpairedClasses, [2])
        try run.run()
        // The CSM losses need mixed data, the others take none.
        XCTAssertTrue(message { try configuration(real30, mixed: nil, loss: .csm).validate() }.contains("--mixed"))
        XCTAssertTrue(message { try configuration(real30, mixed: mixed, loss: .ce).validate() }.contains("--mixed"))
        // A network with other classes than the data.
        let config = configuration(real30)
        let data = try TrainingData(realPath: real30, mixedPath: nil, options: config.data)
        let network = LinearClassifier(input: data.input, classNames: ["a", "b"], seed: 1)
        XCTAssertTrue(message { _ = try Trainer(network: network, data: data, configuration: config, checkpointPath: "/x") }
            .contains("classes"))
    }

    /// --consistent-only and --mixed-share: batches identical on 1 and 2 threads, about the
    /// share's mixed samples, both recorded in the model's training metadata and in the
    /// checkpoint, whose resume with other values is refused.
    func testConsistentOnlyAndMixedShareAreRecordedAndChecked() throws {
        let real = try fixtures.writeReal(count: 90)
        let mixed = try fixtures.writeMixed(groups: 6, consistent: { g, i in g % 2 == 0 && i == 3 ? 0 : 1 })
        var config = configuration(real, mixed: mixed, loss: .csm, epochs: 2)
        config.data.consistentOnly = true
        config.data.mixedShare = 0.5
        let one = try TrainingData(realPath: real, mixedPath: mixed, options: config.data, threads: 1)
        let two = try TrainingData(realPath: real, mixedPath: mixed, options: config.data, threads: 2)
        var mixedCount = 0, realCount = 0
        for epoch in 0..<2 {
            let a = one.batches(epoch: epoch), b = two.batches(epoch: epoch)
            while let x = try a.next() {
                let y = try XCTUnwrap(try b.next())
                XCTAssertEqual(x.images.values, y.images.values)
                XCTAssertEqual(x.mixedTargets, y.mixedTargets)
                mixedCount += x.mixedCount
                realCount += x.realCount
            }
        }
        // Each real sample brings 2 mixed ones with probability 0.5.
        XCTAssertEqual(Double(mixedCount) / Double(realCount), 1, accuracy: 0.3)

        let run = try trainer(config, checkpoint: fixtures.directory + "/c.ckpt")
        try run.run()
        try run.writeModel(to: fixtures.directory + "/c.safetensors")
        let metadata = try SafeTensorsFile(path: fixtures.directory + "/c.safetensors").metadata
        let training = try XCTUnwrap(metadata["training"])
        XCTAssertTrue(training.contains("\"consistentOnly\":true") && training.contains("\"mixedShare\":0.5"), training)
        XCTAssertTrue(metadata["provenance"]?.contains("consistent samples only, mixed share 0.5") ?? false, metadata["provenance"] ?? "")

        struct Interrupted: Error {}
        let first = try trainer(config, checkpoint: fixtures.directory + "/d.ckpt")
        XCTAssertThrowsError(try first.run(onEpoch: { _ in throw Interrupted() }))
        for change in [{ (c: inout TrainingConfiguration) in c.data.mixedShare = 1 }, { c in c.data.consistentOnly = false }] {
            var changed = config
            change(&changed)
            XCTAssertThrowsError(try trainer(changed, checkpoint: fixtures.directory + "/d.ckpt")) { error in
                XCTAssertTrue("\(error)".contains("different settings (data)"), "\(error)")
            }
        }
        XCTAssertTrue(try trainer(config, checkpoint: fixtures.directory + "/d.ckpt").resumed)

        // Without mixed data, or with a share outside (0, 1], the options are refused.
        var noMixed = configuration(real)
        noMixed.data.consistentOnly = true
        XCTAssertThrowsError(try noMixed.validate()) { XCTAssertTrue("\($0)".contains("--mixed"), "\($0)") }
        config.data.mixedShare = 0
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("--mixed-share"), "\($0)") }
        // No consistent sample at all.
        let none = try fixtures.writeMixed("none.h5", groups: 3, consistent: { _, _ in 0 })
        var all = configuration(real, mixed: none, loss: .csm)
        all.data.consistentOnly = true
        XCTAssertThrowsError(try trainer(all, checkpoint: "/nonexistent")) { XCTAssertTrue("\($0)".contains("no consistent mixed samples"), "\($0)") }
    }
}

import CSMModels
import CSMFormats
import CSMNumerics
import Foundation
import XCTest

private func trainFixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/train/\(name)").path
}

/// TrainableResNet against PyTorch (fixtures from tools/fixtures/make_train_fixture.py): one
/// training-mode forward/backward of a mean cross-entropy loss.
final class TrainableResNetTests: XCTestCase {
    static let cases = ["basic-cifar", "basic-winograd", "bottleneck-imagenet"]

    /// max |got − expected| ≤ tolerance · max |expected|.
    func assertClose(_ got: [Float], _ expected: [Float], relative tolerance: Float, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        let scale = max(expected.map(abs).max() ?? 0, 1e-12)
        var worst: Float = 0
        for (a, b) in zip(got, expected) { worst = max(worst, abs(a - b)) }
        XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(label): worst \(worst), max |ref| \(scale)", file: file, line: line)
    }

    /// The batch of a step fixture as NHWC input, its labels and its file.
    func batch(_ name: String) throws -> (x: FeatureMap, labels: [Int], step: SafeTensorsFile) {
        let step = try SafeTensorsFile(path: trainFixture("\(name).step.safetensors"))
        let shape = try step.shape(of: "input")
        let x = FeatureMap(nchw: try step.floats("input"), count: shape[0], channels: shape[1], height: shape[2], width: shape[3])
        return (x, try step.integers("labels"), step)
    }

    /// d(mean cross entropy)/dlogits = (softmax − onehot) / N.
    func crossEntropyGradient(_ logits: [Float], labels: [Int], classes k: Int) -> [Float] {
        var out = [Float](repeating: 0, count: logits.count)
        for (row, label) in labels.enumerated() {
            let z = logits[(row * k)..<((row + 1) * k)].map(Double.init)
            let top = z.max() ?? 0
            let e = z.map { Foundation.exp($0 - top) }
            let total = e.reduce(0, +)
            for j in 0..<k { out[row * k + j] = Float((e[j] / total - (j == label ? 1 : 0)) / Double(labels.count)) }
        }
        return out
    }

    func testTrainingStepMatchesPyTorch() throws {
        for name in Self.cases {
            let network = try TrainableResNet(path: trainFixture("\(name).model.safetensors"))
            XCTAssertEqual(network.batchesTracked, 7, name)
            let (x, labels, step) = try batch(name)
            let logits = network.forwardTraining(x)
            assertClose(logits, try step.floats("logits"), relative: 1e-4, "\(name) logits")
            network.backward(crossEntropyGradient(logits, labels: labels, classes: network.architecture.numClasses))
            let names = network.parameters.map(\.name)
            XCTAssertEqual(Set(names).count, names.count)
            XCTAssertEqual(Set(step.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) }), Set(names), name)
            for parameter in network.parameters {
                XCTAssertEqual(try step.shape(of: "grad.\(parameter.name)"), parameter.shape, parameter.name)
                assertClose(parameter.gradient, try step.floats("grad.\(parameter.name)"), relative: 1e-4, "\(name) \(parameter.name)")
            }
            XCTAssertEqual(Set(network.buffers.map { "after." + $0.name }), Set(step.names.filter { $0.hasPrefix("after.") }), name)
            for buffer in network.buffers {
                let expected = try step.floats("after.\(buffer.name)")
                for (a, b) in zip(buffer.value, expected) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(name) \(buffer.name)") }
            }
            XCTAssertEqual(network.batchesTracked, 8, name)
        }
    }

    /// The state_dict order: per conv/bn pair conv weight, bn weight, bn bias; fc last.
    func testParameterOrderIsStateDictOrder() throws {
        let network = try TrainableResNet(path: trainFixture("bottleneck-imagenet.model.safetensors"))
        let names = network.parameters.map(\.name)
        XCTAssertEqual(Array(names.prefix(6)), ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias"])
        XCTAssertEqual(Array(names.suffix(5)), ["layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
                                                "fc.weight", "fc.bias"])
        XCTAssertEqual(Array(network.buffers.map(\.name).prefix(2)), ["bn1.running_mean", "bn1.running_var"])
    }

    /// Two runs of the same step give bitwise the same logits, gradients and statistics.
    func testTrainingStepIsReproducible() throws {
        let (x, labels, _) = try batch("basic-winograd")
        func run() throws -> [[Float]] {
            let network = try TrainableResNet(path: trainFixture("basic-winograd.model.safetensors"))
            let logits = network.forwardTraining(x)
            network.backward(crossEntropyGradient(logits, labels: labels, classes: network.architecture.numClasses))
            return [logits] + network.parameters.map(\.gradient) + network.buffers.map(\.value)
        }
        XCTAssertEqual(try run(), try run())
    }

    /// save → ResNetClassifier(path:) → forward equals forwardInference; the reloaded
    /// trainable network keeps weights, statistics and num_batches_tracked.
    func testSavedFileLoadsAsClassifier() throws {
        for name in Self.cases {
            let network = try TrainableResNet(path: trainFixture("\(name).model.safetensors"))
            let (x, labels, _) = try batch(name)
            let logits = network.forwardTraining(x)
            network.backward(crossEntropyGradient(logits, labels: labels, classes: network.architecture.numClasses))
            for parameter in network.parameters {
                for i in parameter.value.indices { parameter.value[i] -= 0.1 * parameter.gradient[i] }
            }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("trainable-\(name)-\(getpid()).safetensors").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try network.save(to: path, metadata: ["provenance": "a test step", "format": "ignored"])
            let classifier = try ResNetClassifier(path: path)
            XCTAssertEqual(classifier.architecture, network.architecture)
            XCTAssertEqual(classifier.input, network.input)
            XCTAssertEqual(classifier.classNames, network.classNames)
            XCTAssertEqual(classifier.metadata["provenance"], "a test step")
            XCTAssertEqual(classifier.metadata["format"], "resnet-classifier/1")
            let expected = network.forwardInference(x)
            let got = classifier.forward(normalized: x)
            assertClose(got.features, expected.features, relative: 1e-5, "\(name) features")
            assertClose(got.logits, expected.logits, relative: 1e-5, "\(name) logits")

            let reloaded = try TrainableResNet(path: path)
            XCTAssertEqual(reloaded.batchesTracked, 8)
            XCTAssertEqual(reloaded.parameters.map(\.value), network.parameters.map(\.value))
            XCTAssertEqual(reloaded.buffers.map(\.value), network.buffers.map(\.value))
        }
    }

    func testSeededInitialisationFollowsTorchvision() {
        let architecture = ResNetArchitecture(block: .basic, layers: [3, 3, 3], widths: [16, 32, 64], stem: .cifar, inputChannels: 1, numClasses: 10)
        let input = ResNetInput(height: 28, width: 28, channels: 1, scale: 1 / 255, mean: [0.286], std: [0.353])
        let names = (0..<10).map { "class \($0)" }
        let a = TrainableResNet(architecture: architecture, input: input, classNames: names, seed: 1)
        let b = TrainableResNet(architecture: architecture, input: input, classNames: names, seed: 1)
        let c = TrainableResNet(architecture: architecture, input: input, classNames: names, seed: 2)
        XCTAssertEqual(a.parameters.map(\.value), b.parameters.map(\.value))
        XCTAssertNotEqual(a.parameters.map(\.value), c.parameters.map(\.value))
        XCTAssertEqual(a.parameters.count, 1 + 2 + 9 * 6 + 2 * 3 + 2)
        XCTAssertEqual(a.batchesTracked, 0)
        for parameter in a.parameters {
            let v = parameter.value.map(Double.init)
            if parameter.shape.count == 4 {
                // Kaiming normal, fan_out = Cout·k·k.
                let std = (v.map { $0 * $0 }.reduce(0, +) / Double(v.count)).squareRoot()
                let expected = (2 / Double(parameter.shape[0] * parameter.shape[2] * parameter.shape[3])).squareRoot()
                if v.count >= 4096 { XCTAssertEqual(std, expected, accuracy: 0.05 * expected, parameter.name) }
            } else if parameter.name.hasPrefix("fc.") {
                XCTAssertTrue(v.allSatisfy { abs($0) <= 1 / 8 }, parameter.name)
                XCTAssertGreaterThan(v.map(abs).max() ?? 0, 0.05, parameter.name)
            } else {
                XCTAssertEqual(Set(v), [parameter.name.hasSuffix(".weight") ? 1 : 0], parameter.name)
            }
        }
        for buffer in a.buffers { XCTAssertEqual(Set(buffer.value), [buffer.name.hasSuffix("running_var") ? 1 : 0], buffer.name) }
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try TrainableResNet(path: "/nonexistent/model.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/model.safetensors"), "\(error)")
        }
    }
}

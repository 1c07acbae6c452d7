import CSMFormats
import CSMModels
import CSMNumerics
import CSMTraining
import Foundation
import XCTest

/// One SGD step of a small ResNet (batch 64, no augmentation, momentum 0.9, weight decay
/// 5e-4, lr 0.1) against PyTorch's (Tests/Fixtures/training, tools/fixtures/make_sgd_step_fixture.py):
/// weights and batch-norm running statistics within 1e-4 relative, for ce, ls, focal, bsce-gra.
final class SGDStepFixtureTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/training")
    static var initial: String { directory.appendingPathComponent("init.safetensors").path }
    static var step: String { directory.appendingPathComponent("step.safetensors").path }

    /// Compares every tensor of `path` (a saved network) with the fixture's `loss/NAME`.
    static func assertMatchesFixture(_ path: String, loss: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let saved = try SafeTensorsFile(path: path)
        let reference = try SafeTensorsFile(path: step)
        let names = reference.names.filter { $0.hasPrefix(loss + "/") }
        XCTAssertGreaterThan(names.count, 10, file: file, line: line)
        for name in names {
            let tensor = String(name.dropFirst(loss.count + 1))
            let expected = try reference.floats(name), actual = try saved.floats(tensor)
            XCTAssertEqual(actual.count, expected.count, tensor, file: file, line: line)
            let scale = expected.map { abs($0) }.max() ?? 0
            let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1e-3), "\(loss): \(tensor) off by \(worst) (scale \(scale))",
                                     file: file, line: line)
        }
        // The step changed the weights: the comparison is not against the start.
        let start = try SafeTensorsFile(path: initial)
        XCTAssertNotEqual(try start.floats("conv1.weight"), try saved.floats("conv1.weight"), file: file, line: line)
        XCTAssertEqual(try saved.floats("bn1.num_batches_tracked"), [1], file: file, line: line)
    }

    func testOneStepMatchesPyTorch() throws {
        let fixture = try SafeTensorsFile(path: Self.step)
        let pixels = try fixture.floats("images").map { UInt8($0) }
        let labels = try fixture.floats("labels").map { Int($0) }
        let directory = NSTemporaryDirectory() + "csm-sgd-step-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for kind in [TrainingLoss.Kind.ce, .ls, .focal, .bsceGRA] {
            let network = try TrainableResNet(path: Self.initial)
            let input = network.input
            var x = FeatureMap(count: 64, height: 8, width: 8, channels: 1)
            for i in x.values.indices { x.values[i] = (Float(pixels[i]) * input.scale - input.mean[0]) / input.std[0] }
            for parameter in network.parameters { parameter.zeroGradient() }
            let logits = network.forwardTraining(x)
            let loss = try TrainingLoss(kind: kind).evaluate(realLogits: logits, realLabels: labels, mixedLogits: [], mixedTargets: [],
                                                             classCount: 3)
            network.backward(loss.gradient)
            SGD(parameterCount: network.parameters.count, momentum: 0.9, weightDecay: 5e-4).step(network.parameters, lr: 0.1)
            let path = directory + "/\(kind.rawValue).safetensors"
            try network.save(to: path, metadata: [:])
            try Self.assertMatchesFixture(path, loss: kind.rawValue)
        }
    }
}

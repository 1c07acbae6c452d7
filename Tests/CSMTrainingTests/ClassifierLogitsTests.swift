import CSMCalibration
import CSMFormats
import CSMLoader
import CSMModels
import CSMNumerics
import CSMShards
import CSMTraining
import XCTest

/// `ClassifierLogits`: a classifier file run on shards gives the network's own logits, and
/// shards of another shape or class set are refused with the file named.
final class ClassifierLogitsTests: XCTestCase {
    private var fixtures: TrainingFixtures!

    override func setUpWithError() throws { fixtures = try TrainingFixtures() }
    override func tearDown() { fixtures.remove() }

    private func linearClassifier(classes k: Int = 3) throws -> (LinearClassifier, String) {
        let input = ResNetInput(height: 6, width: 6, channels: 1, scale: 1 / 255, mean: [0.4], std: [0.2])
        let network = LinearClassifier(input: input, classNames: TrainingFixtures.names(k), seed: 3)
        let path = fixtures.directory + "/linear.safetensors"
        try network.save(to: path, metadata: [:])
        return (network, path)
    }

    func testLogitsAreTheNetworksOnEverySample() throws {
        let real = try fixtures.writeReal(count: 300, classes: 3)
        let (network, path) = try linearClassifier()
        let runner = try ClassifierLogits(path: path)
        XCTAssertEqual(runner.classNames, TrainingFixtures.names(3))
        let set = try runner.evaluationSet(data: real)
        XCTAssertEqual(set.sampleCount, 300)
        XCTAssertEqual(set.labels, (0..<300).map { $0 % 3 })

        let shards = try ShardSet(path: real)
        var pixels: [UInt8] = []
        for i in 0..<300 { pixels += try shards.image(i) }
        var x = FeatureMap(uninitializedCount: 300, height: 6, width: 6, channels: 1)
        for i in 0..<pixels.count { x.values[i] = (Float(pixels[i]) / 255 - 0.4) / 0.2 }
        let expected = network.forwardInference(x).logits
        guard case .float(let logits) = set.values else { return XCTFail("logits are not float32") }
        XCTAssertEqual(logits.count, 900)
        for (got, want) in zip(logits, expected) { XCTAssertEqual(got, want, accuracy: 1e-5) }
    }

    func testShardsOfAnotherClassSetAreRefused() throws {
        let real = try fixtures.writeReal(count: 12, classes: 4)
        let (_, path) = try linearClassifier(classes: 3)
        XCTAssertThrowsError(try ClassifierLogits(path: path).evaluationSet(data: real)) { error in
            XCTAssertEqual("\(error)", "\(real): holds 6×6×1 images of 4 classes, but \(path) takes 6×6×1 images of 3 classes")
        }
    }

    func testAMissingFileIsNamed() {
        XCTAssertThrowsError(try ClassifierLogits(path: fixtures.directory + "/none.safetensors")) { error in
            XCTAssertEqual("\(error)", "\(fixtures.directory)/none.safetensors: no such file")
        }
    }

    func testEpochLines() throws {
        let record = EpochRecord(epoch: 3, steps: 120, learningRate: 0.05, trainLoss: 0.41234, validationAccuracy: 0.9,
                                 validationNLL: 0.3, validationECE: 0.0123)
        XCTAssertEqual(record.text(epochs: 10, imagesPerSecond: 512.4),
                       "epoch 3/10  step 120  lr 0.05  train loss 0.4123  val accuracy 0.9000  NLL 0.3000  ECE 0.0123  512 img/s")
        var bare = record
        bare.validationAccuracy = nil
        XCTAssertEqual(bare.text(epochs: 10, imagesPerSecond: 0), "epoch 3/10  step 120  lr 0.05  train loss 0.4123  0 img/s")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(record.json(seconds: 2, imagesPerSecond: 3, peakMemoryMiB: 4).utf8))
                                 as? [String: Double])
        XCTAssertEqual(json, ["epoch": 3, "steps": 120, "lr": 0.05, "train_loss": 0.41234, "seconds": 2, "images_per_second": 3,
                              "peak_memory_mib": 4, "val_accuracy": 0.9, "val_nll": 0.3, "val_ece": 0.0123])
    }
}

/// The networks `csm train` builds and loads.
final class NetworkPresetsTests: XCTestCase {
    func testPresetsAreSizedFromTheData() throws {
        let input = ResNetInput(height: 28, width: 28, channels: 1, scale: 1 / 255, mean: [0.3], std: [0.3])
        let names = TrainingFixtures.names(10)
        for name in NetworkPresets.names {
            let network = try NetworkPresets.make(name, input: input, classNames: names, seed: 0)
            XCTAssertEqual(network.classCount, 10, name)
            XCTAssertEqual(network.classNames, names, name)
        }
        XCTAssertThrowsError(try NetworkPresets.make("resnet21", input: input, classNames: names, seed: 0)) { error in
            XCTAssertEqual("\(error)", "--arch must be one of resnet20, resnet32, resnet56, resnet18, resnet50, linear, got 'resnet21'")
        }
    }

    func testLoadRefusesAFileThatIsNoClassifier() throws {
        let path = NSTemporaryDirectory() + "csm-not-a-classifier-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensorsWriter.write([.init(name: "x", shape: [1], values: [0])], metadata: ["format": "edm-diffusion/1"], to: path)
        XCTAssertThrowsError(try NetworkPresets.load(path)) { error in
            XCTAssertEqual("\(error)", "\(path): not a classifier csm can train (format edm-diffusion/1)")
        }
    }
}

import CSMDiffusion
import CSMFormats
import CSMModels
import CSMNumerics
import CSMPictures
import CSMPipeline
import CSMRandom
import Foundation
import XCTest

/// What `csm sample` samples from, how it names and lays out its images, and its batches.
final class SampleInputsTests: XCTestCase {
    let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "csm-sample-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `count` latents of 1 × 2 × 2 values, numbered from their file index.
    func fileLatents(_ count: Int) -> SampleInputs.Latents {
        SampleInputs.Latents(noise: FeatureMap(count: count, height: 2, width: 2, channels: 1, values: (0..<(4 * count)).map(Float.init)),
                             churnSeeds: (0..<UInt64(count)).map { $0 }, fromSeeds: false)
    }

    // MARK: Class vectors

    func testClassVectorsOfEachChoice() throws {
        XCTAssertEqual(try SampleInputs.Classes.single(2).vectors(count: 2, classCount: 3), [0, 0, 1, 0, 0, 1])
        XCTAssertEqual(try SampleInputs.Classes.trajectory(ClassPair(1, 2), lambdas: 3).vectors(count: 6, classCount: 3),
                       [0, 0, 1, 0, 0.5, 0.5, 0, 1, 0, 0, 0, 1, 0, 0.5, 0.5, 0, 1, 0])
        XCTAssertEqual(try SampleInputs.Classes.mix(ClassPair(2, 0), lambda: 0.25).vectors(count: 2, classCount: 3),
                       [0.75, 0, 0.25, 0.75, 0, 0.25])
        XCTAssertEqual(try SampleInputs.Classes.unconditional.vectors(count: 2, classCount: 3), [Float](repeating: 0, count: 6))
        XCTAssertEqual(try SampleInputs.Classes.single(0).vectors(count: 2, classCount: 0), [], "no classes, no vectors")
    }

    func testMixParsesIndicesAndNames() throws {
        let mix = try XCTUnwrap(try SampleInputs.Classes.mix(parsing: "Sneaker:ankle BOOT:0.7", classNames: names, classCount: 10))
        XCTAssertEqual(mix, .mix(ClassPair(7, 9), lambda: 0.7))
        let vectors = try mix.vectors(count: 2, classCount: 10)
        XCTAssertEqual(vectors.count, 20)
        XCTAssertEqual([vectors[7], vectors[9], vectors[17], vectors[19]], [0.7, 1 - Float(0.7), 0.7, 1 - Float(0.7)])
        XCTAssertEqual(vectors.reduce(0, +), 2, accuracy: 1e-6)
        XCTAssertEqual(try SampleInputs.Classes.mix(parsing: "7:9:1", classNames: nil, classCount: 10),
                       SampleInputs.Classes.mix(ClassPair(7, 9), lambda: 1))

        for malformed in ["7:9", "7:9:1.5", "7:9:-0.1", "7:9:x", "7:9:nan", "7:9:0.5:1"] {
            XCTAssertNil(try SampleInputs.Classes.mix(parsing: malformed, classNames: names, classCount: 10), malformed)
        }
        XCTAssertThrowsError(try SampleInputs.Classes.mix(parsing: "Shoe:9:0.5", classNames: names, classCount: 10)) {
            XCTAssertTrue("\($0)".hasPrefix("unknown class 'Shoe'"), "\($0)")
        }
        XCTAssertThrowsError(try SampleInputs.Classes.mix(parsing: "7:10:0.5", classNames: names, classCount: 10)) {
            XCTAssertEqual("\($0)", "class 10 is out of range 0..<10")
        }
    }

    func testClassLabelsFromAFileAndItsShape() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/labels.safetensors"
        let values: [Float] = [1, 0, 0, 0.5, 0.5, 0]
        try SafeTensorsWriter.write([.init(name: "class_labels", shape: [2, 3], values: values)], to: path)

        let inputs = try SampleInputs(latents: fileLatents(2), classes: .file(path), classCount: 3)
        XCTAssertEqual(inputs.classLabels, values)
        XCTAssertEqual(inputs.count, 2)
        XCTAssertThrowsError(try SampleInputs(latents: fileLatents(3), classes: .file(path), classCount: 3)) {
            XCTAssertEqual("\($0)", "\(path): tensor 'class_labels' has shape [2, 3], expected [3, 3]")
        }
        XCTAssertThrowsError(try SampleInputs.Classes.file(path).vectors(count: 2, classCount: 4))

        let infinite = directory + "/infinite.safetensors"
        try SafeTensorsWriter.write([.init(name: "class_labels", shape: [2, 3], values: [1, 0, 0, .infinity, 0, 0])], to: infinite)
        XCTAssertThrowsError(try SampleInputs.Classes.file(infinite).vectors(count: 2, classCount: 3)) {
            XCTAssertEqual(($0 as? FileError)?.path, infinite)
        }
    }

    // MARK: Latents

    func testLatentsOfSeedsRepeatPerTrajectory() {
        let latents = SampleInputs.Latents(seeds: [5, 6], repeats: 2, channels: 1, height: 2, width: 2)
        XCTAssertEqual(latents.churnSeeds, [5, 5, 6, 6])
        XCTAssertTrue(latents.fromSeeds)
        XCTAssertEqual(latents.noise.count, 4)
        let values = latents.noise.nchw
        let five = GaussianStream(seed: 5).values(4), six = GaussianStream(seed: 6).values(4)
        XCTAssertEqual(Array(values[0..<4]), five)
        XCTAssertEqual(Array(values[4..<8]), five)
        XCTAssertEqual(Array(values[8..<12]), six)
        XCTAssertNotEqual(five, six)
    }

    func testLatentsFromAFileAndTheirShape() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/latents.safetensors"
        let values = (0..<8).map { Float($0) / 8 }
        try SafeTensorsWriter.write([.init(name: "latents", shape: [2, 1, 2, 2], values: values)], to: path)
        let latents = try SampleInputs.Latents(file: path, channels: 1, height: 2, width: 2)
        XCTAssertEqual(latents.noise.nchw, values)
        XCTAssertEqual(latents.churnSeeds, [0, 1])
        XCTAssertFalse(latents.fromSeeds)
        XCTAssertThrowsError(try SampleInputs.Latents(file: path, channels: 3, height: 2, width: 2)) {
            XCTAssertEqual("\($0)", "\(path): tensor 'latents' has shape [2, 1, 2, 2], the model needs [N, 3, 2, 2]")
        }
    }

    // MARK: Names and pictures

    func testPNGNames() throws {
        let trajectory = try SampleInputs(latents: .init(seeds: [5, 42], repeats: 3, channels: 1, height: 2, width: 2),
                                          classes: .trajectory(ClassPair(7, 9), lambdas: 3), classCount: 10)
        XCTAssertEqual((0..<6).map(trajectory.pngName), [
            "seed000005-lambda0.000.png", "seed000005-lambda0.500.png", "seed000005-lambda1.000.png",
            "seed000042-lambda0.000.png", "seed000042-lambda0.500.png", "seed000042-lambda1.000.png",
        ])
        let seeded = try SampleInputs(latents: .init(seeds: [7, 1_234_567], repeats: 1, channels: 1, height: 2, width: 2),
                                      classes: .single(3), classCount: 10)
        XCTAssertEqual((0..<2).map(seeded.pngName), ["seed000007.png", "seed1234567.png"])
        let fromFile = try SampleInputs(latents: fileLatents(2), classes: .mix(ClassPair(1, 2), lambda: 0.5), classCount: 10)
        XCTAssertEqual((0..<2).map(fromFile.pngName), ["000000.png", "000001.png"])
    }

    func testPicturesQuantiseAsEDMDoes() throws {
        let images = FeatureMap(count: 2, height: 1, width: 2, channels: 1, values: [-1, 0, 0.5, 2])
        let pictures = try SampleInputs.pictures(of: images)
        XCTAssertEqual(pictures.map(\.pixels), [[0, 128], [191, 255]])
        XCTAssertEqual(pictures.map(\.width), [2, 2])
        XCTAssertEqual(pictures.map(\.channels), [1, 1])
    }

    /// Five 3 × 2 images: a grid of 3 columns and 2 rows, each image doubled, 2 pixels apart.
    func testContactSheetOfSingleImages() throws {
        let inputs = try SampleInputs(latents: fileLatents(5), classes: .single(0), classCount: 10)
        let pictures = try (0..<5).map { try RasterImage(width: 3, height: 2, channels: 1, pixels: [UInt8](repeating: UInt8(10 * $0), count: 6)) }
        let sheet = try inputs.contactSheet(of: pictures, classNames: nil)
        XCTAssertEqual([sheet.width, sheet.height, sheet.channels], [3 * 6 + 4 * 2, 2 * 4 + 3 * 2, 1])
        XCTAssertEqual(sheet.color(x: 2 + 8 + 2, y: 2 + 4 + 2).r, 40, "image 4 is second in the second row")
        XCTAssertEqual(sheet.color(x: 2 + 16 + 2, y: 2 + 4 + 2).r, 255, "no sixth image")
    }

    /// Two seeds × three λ: a row per seed ("seed 5", 35 pixels, + 2·4 → cells from x = 43),
    /// the title and λ labels above (26 + 11 + 2·4 → cells from y = 45), cells 6 × 4 + 4.
    func testContactSheetOfTrajectories() throws {
        let inputs = try SampleInputs(latents: .init(seeds: [5, 6], repeats: 3, channels: 1, height: 2, width: 3),
                                      classes: .trajectory(ClassPair(7, 9), lambdas: 3), classCount: 10)
        let pictures = try (0..<6).map { try RasterImage(width: 3, height: 2, channels: 1, pixels: [UInt8](repeating: UInt8(10 * $0), count: 6)) }
        let sheet = try inputs.contactSheet(of: pictures, classNames: names)
        XCTAssertEqual([sheet.width, sheet.height, sheet.channels], [43 + 3 * 10 + 4, 45 + 2 * 8 + 4, 3])
        XCTAssertEqual(sheet.color(x: 43 + 2 * 10 + 1, y: 45 + 8 + 1).r, 50, "seed 6 at λ = 1")
        XCTAssertEqual(sheet.color(x: 43 + 10 + 1, y: 45 + 1).r, 10, "seed 5 at λ = 0.5")
    }

    // MARK: Sampling

    var modelPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/edm/ddpmpp-edm-32x3.safetensors").path
    }

    /// Batches of any size give the images of one batch, each with its own class vector; the
    /// progress counts images done, a batch in proportion to its evaluations.
    func testBatchesAndProgress() throws {
        let model = try EDMModel(path: modelPath)
        var settings = SamplerSettings()
        settings.steps = 2           // Heun: 3 evaluations
        let sampler = EDMSampler(model: model, settings: settings)
        let inputs = try SampleInputs(latents: .init(seeds: [3], repeats: 3, channels: model.channels, height: model.resolution,
                                                     width: model.resolution),
                                      classes: .trajectory(ClassPair(1, 2), lambdas: 3), classCount: model.labelDimension)
        var progress: [Int] = []
        let batched = try inputs.sample(with: sampler, batch: 2, modelPath: modelPath) { progress.append($0) }
        XCTAssertEqual(progress, [0, 1, 2, 2, 2, 3])
        let whole = try inputs.sample(with: sampler, batch: 3, modelPath: modelPath)
        XCTAssertEqual(batched.count, 3)
        XCTAssertEqual(batched.values.count, whole.values.count)
        XCTAssertLessThan(zip(batched.values, whole.values).map { abs($0 - $1) }.max() ?? 1, 1e-4)
        let per = whole.values.count / 3
        XCTAssertNotEqual(Array(whole.values[0..<per]), Array(whole.values[per..<(2 * per)]), "λ differs, so do the images")
    }

    /// An image that turns non-finite names the model and the image (and its seed) in the whole run.
    func testNonFiniteImageNamesTheModelAndTheImage() throws {
        let model = try EDMModel(path: modelPath)
        var settings = SamplerSettings()
        settings.steps = 1
        let sampler = EDMSampler(model: model, settings: settings)
        let per = model.channels * model.resolution * model.resolution
        let noise = FeatureMap(nchw: [Float](repeating: 0.1, count: per) + [Float](repeating: 1e38, count: per),
                               count: 2, channels: model.channels, height: model.resolution, width: model.resolution)
        let expected = "the sample turned non-finite at network evaluation 1 of 1 (σ = 80); "
            + "nothing was written (a model with extreme weights, or latents too large)"
        for (fromSeeds, which) in [(true, "image 1 (seed 11)"), (false, "image 1")] {
            let inputs = try SampleInputs(latents: .init(noise: noise, churnSeeds: [10, 11], fromSeeds: fromSeeds), classes: .single(1),
                                          classCount: model.labelDimension)
            XCTAssertThrowsError(try inputs.sample(with: sampler, batch: 1, modelPath: modelPath)) {
                XCTAssertEqual("\($0)", "\(modelPath): \(which): \(expected)")
            }
        }
    }
}

import CSMFormats
import CSMModels
import CSMPipeline
import CSMShards
import Foundation
import XCTest

/// `csm prototypes`: the one shard resolver (a manifest, its directory or one shard give the
/// same prototypes), and a classifier whose stage widths are not multiples of 16 (a
/// `resnet-classifier/1` file with widths [24, 48, 40], made by
/// tools/fixtures/make_odd_width_fixtures.py) gives PyTorch's prototypes.
final class PrototypesCommandTests: XCTestCase {
    let fixtures = packageRoot().appendingPathComponent("Tests/Fixtures/odd")

    func testOddWidthClassifierGivesPyTorchPrototypes() throws {
        let classifier = fixtures.appendingPathComponent("resnet-basic-cifar-24-48-40.safetensors").path
        let reference = try SafeTensorsFile(path: fixtures.appendingPathComponent("resnet-basic-cifar-24-48-40.forward.safetensors").path)
        let shape = try reference.shape(of: "pixels_u8")
        let (n, h, w) = (shape[0], shape[2], shape[3])
        XCTAssertEqual(shape[1], 1)
        let labels = try reference.integers("labels")
        let names = try ResNetClassifier(path: classifier).classNames
        let k = names.count
        // The fixture's images as a real-data shard.
        let pixels = try reference.integers("pixels_u8").map { UInt8($0) }
        let samples = ShardSamples.real(height: h, width: w, channels: 1, numClasses: k, images: pixels,
                                        classes: labels.map { Int32($0) })
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .real, classNames: names, sharpness: 0, createdBy: "test"),
                                to: dir + "/real.h5")
        XCTAssertEqual(samples.count, n)

        let out = dir + "/prototypes.safetensors"
        let result = try runCSM(["prototypes", "--data", dir + "/real.h5", "--classifier", classifier, "--out", out, "--batch-size", "7"])
        XCTAssertEqual(result.status, 0, result.err)
        let prototypes = try ClassPrototypes(path: out)
        let f = prototypes.featureDimension
        XCTAssertEqual(f, 40)
        XCTAssertEqual(prototypes.counts, try reference.floats("counts"))
        let expected = try reference.floats("prototypes", shape: [k, f])
        for c in 0..<k {
            let row = Array(expected[(c * f)..<((c + 1) * f)])
            let largest = row.map(abs).max() ?? 0
            let worst = zip(prototypes.prototypes[c], row).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-4 * (1 + largest), "class \(c): prototype differs from PyTorch's")
        }
    }

    func testManifestDirectoryAndShardGiveTheSamePrototypes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Ten 28×28 images, one per class, as an IDX pair.
        func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (24 - 8 * $0) & 0xff) } }
        let pixels = (0..<(10 * 28 * 28)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 / 784 &* 11) }
        try AtomicFile.write(bigEndian(0x803) + bigEndian(10) + bigEndian(28) + bigEndian(28) + pixels, to: dir + "/images.idx")
        try AtomicFile.write(bigEndian(0x801) + bigEndian(10) + (0..<10).map { UInt8($0) }, to: dir + "/labels.idx")
        let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        try AtomicFile.write(Data(ClassNames.json(names).utf8), to: dir + "/names.json")
        let imported = try runCSM(["import", "idx", "--images", dir + "/images.idx", "--labels", dir + "/labels.idx",
                                   "--class-names", dir + "/names.json", "--split", "test", "--out", dir + "/real"])
        XCTAssertEqual(imported.status, 0, imported.err)

        var results: [[[Float]]] = []
        for (index, data) in [dir + "/real/manifest.json", dir + "/real", dir + "/real/real-test-00000.h5"].enumerated() {
            let out = dir + "/p\(index).safetensors"
            let result = try runCSM(["prototypes", "--data", data, "--out", out])
            XCTAssertEqual(result.status, 0, result.err)
            results.append(try ClassPrototypes(path: out).prototypes)
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])

        let bad = try runCSM(["prototypes", "--data", dir + "/absent", "--out", dir + "/x.safetensors"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("\(dir)/absent: no such file or directory"), bad.err)
    }
}

import CSMFormats
import CSMModels
import CSMPipeline
import CSMShards
import Foundation
import XCTest

/// `csm prototypes` with a classifier whose stage widths are not multiples of 16 (a
/// `resnet-classifier/1` file with widths [24, 48, 40], made by tools/make_odd_width_fixtures.py)
/// gives PyTorch's prototypes.
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
        var samples = ShardSamples(height: h, width: w, channels: 1, numClasses: k, images: [], labels: [], classA: [], classB: [],
                                   lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
        samples.images = try reference.integers("pixels_u8").map { UInt8($0) }
        for label in labels {
            var oneHot = [Float](repeating: 0, count: k)
            oneHot[label] = 1
            samples.labels += oneHot
            samples.classA.append(Int32(label))
            samples.classB.append(-1)
            samples.lambdaGen.append(1)
            samples.lambdaProj.append(.nan)
            samples.probA.append(1)
            samples.probB.append(0)
            samples.consistent.append(1)
            samples.group.append(-1)
            samples.seed.append(-1)
        }
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
}

import CSMFormats
import CSMImport
import CSMModels
import CSMPipeline
import CSMShards
import Foundation
import XCTest

/// The repository root.
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

final class ClassPrototypesTests: XCTestCase {
    static let classifierPath = repositoryRoot.appendingPathComponent("Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors").path

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "csm-prototypes-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testPrototypesOfASyntheticRealShardAreTheMeanFeatures() throws {
        guard FileManager.default.fileExists(atPath: Self.classifierPath) else { throw XCTSkip("default classifier missing") }
        let classifier = try ResNetClassifier(path: Self.classifierPath)
        let (h, w, k) = (classifier.inputHeight, classifier.inputWidth, classifier.numClasses)
        let labels: [Int32] = [3, 7, 3, 0, 7, 7, 9]
        var state: UInt32 = 7
        let pixels = (0..<(labels.count * h * w)).map { _ -> UInt8 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(state >> 24)
        }
        let data = LabeledImages(height: h, width: w, channels: 1, classNames: classifier.classNames, images: pixels, labels: labels)
        let dir = try temporaryDirectory()
        let manifest = try RealDataImport(split: "train", shardSize: 4, createdBy: "csm test").write(data, to: dir, config: .object([:]))

        var accumulator = ClassPrototypeAccumulator(numClasses: k, featureDimension: classifier.featureDimension)
        for shard in manifest.shards {   // batches of 3 cross the shard's rows unevenly
            try accumulator.add(shard: try ShardReader(path: dir + "/" + shard.file), classifier: classifier, batchSize: 3)
        }
        XCTAssertEqual(accumulator.counts, [1, 0, 0, 2, 0, 0, 0, 3, 0, 1])

        // By hand: one image at a time, averaged per class.
        let f = classifier.featureDimension
        let features = (0..<labels.count).map { n in
            classifier.forward(pixels: Array(pixels[(n * h * w)..<((n + 1) * h * w)]), count: 1).features
        }
        let means = accumulator.means
        for c in 0..<k {
            let members = labels.indices.filter { labels[$0] == Int32(c) }
            for j in 0..<f {
                let expected = members.isEmpty ? 0 : members.reduce(0.0) { $0 + Double(features[$1][j]) } / Double(members.count)
                XCTAssertEqual(Double(means[c][j]), expected, accuracy: 1e-4 * max(1, abs(expected)), "class \(c) feature \(j)")
            }
        }

        // Written and loaded back.
        let out = dir + "/prototypes.safetensors"
        let sha = try FileHash.sha256(ofFile: Self.classifierPath)
        try ClassPrototypes(prototypes: means, counts: accumulator.counts.map { Float($0) }, classifierSHA256: sha,
                            classifier: "fashion-mnist-resnet20.safetensors", classNames: classifier.classNames, source: dir)
            .write(to: out)
        let loaded = try ClassPrototypes(path: out)
        XCTAssertEqual(loaded.prototypes, means)
        XCTAssertEqual(loaded.counts, [1, 0, 0, 2, 0, 0, 0, 3, 0, 1])
        XCTAssertEqual(loaded.classifierSHA256, sha)
        XCTAssertEqual(loaded.classNames, classifier.classNames)
        XCTAssertEqual(loaded.source, dir)
        let file = try SafeTensorsFile(path: out)
        XCTAssertEqual(file.metadata["format"], "csm-prototypes/1")
        XCTAssertEqual(try file.shape(of: "prototypes"), [k, f])

        // A mixed shard is refused.
        var mixed = data.realSamples(rows: 0..<2)
        mixed.classB = [1, 2]
        let mixedPath = dir + "/mixed.h5"
        try ShardWriter().write(mixed, metadata: ShardMetadata(kind: .mixed, classNames: classifier.classNames, sharpness: 10,
                                                               createdBy: "csm test"), to: mixedPath)
        XCTAssertThrowsError(try accumulator.add(shard: try ShardReader(path: mixedPath), classifier: classifier)) { error in
            XCTAssertTrue("\(error)".contains(mixedPath) && "\(error)".contains("real data"), "\(error)")
        }
    }

    func testLoaderRejectsMalformedFilesNamingThem() throws {
        let dir = try temporaryDirectory()
        let sha = String(repeating: "ab", count: 32)
        let names = "[\"a\",\"b\"]"
        func make(_ name: String, _ metadata: [String: String], prototypes: [Int] = [2, 3], counts: [Int] = [2]) throws -> String {
            let path = dir + "/" + name
            try SafeTensorsWriter.write([
                .init(name: "prototypes", shape: prototypes, values: [Float](repeating: 0.5, count: prototypes.reduce(1, *))),
                .init(name: "counts", shape: counts, values: [Float](repeating: 1, count: counts.reduce(1, *))),
            ], metadata: metadata, to: path)
            return path
        }
        let good: [String: String] = ["format": "csm-prototypes/1", "classifier_sha256": sha, "class_names": names]
        XCTAssertEqual(try ClassPrototypes(path: try make("good", good)).prototypes, [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])

        var cases: [(String, String)] = []
        var other = good; other["format"] = "resnet-classifier/1"
        cases.append((try make("format", other), "format"))
        other = good; other["classifier_sha256"] = nil
        cases.append((try make("sha", other), "classifier_sha256"))
        other = good; other["class_names"] = "nope"
        cases.append((try make("names", other), "class_names"))
        cases.append((try make("shape", good, prototypes: [3, 3]), "prototypes"))
        cases.append((try make("counts", good, counts: [3]), "counts"))
        cases.append((dir + "/missing", "missing"))
        for (path, mention) in cases {
            XCTAssertThrowsError(try ClassPrototypes(path: path)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(path) && text.contains(mention), "'\(text)' should name \(path) and '\(mention)'")
                XCTAssertFalse(text.contains("\n"))
            }
        }
    }
}

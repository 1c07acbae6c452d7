import CSMAttribution
import CSMFormats
import CSMModels
import CSMPictures
import CSMShards
import XCTest

/// The index and query runs behind `csm attribute`: chunks indexed one by one give the
/// features the featurizer gives in one call, and a query keeps exactly the best scores of
/// the kernel, best first.
final class AttributionQueryTests: XCTestCase {
    private var dir = ""
    private let modelPath = fixture("edm/ddpmpp-vp-28x1.safetensors")

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "csm-attribution-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func writeReal(_ name: String, count: Int, offset: Int) throws -> String {
        let side = 28, classes = 10
        let samples = ShardSamples.real(
            height: side, width: side, channels: 1, numClasses: classes,
            images: (0..<count).flatMap { i in (0..<(side * side)).map { UInt8(truncatingIfNeeded: (i + offset + 1) &* $0 &* 7 / 5) } },
            classes: (0..<count).map { Int32(($0 + offset) % classes) })
        let path = dir + "/\(name).h5"
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .real, classNames: (0..<classes).map { "c\($0)" }, sharpness: .nan,
                                                                 createdBy: "test"), to: path)
        return path
    }

    func testIndexedChunksAndQueryScores() throws {
        let network = try TrainableUNet(path: modelPath)
        let sha = try FileHash.sha256(ofFile: modelPath)
        let settings = AttributionSettings(sigmas: AttributionSettings.noiseLevels(2, for: network), noiseSeed: 5, projectionDimension: 32,
                                           projectionSeed: 1, weighting: .error)
        let featurizer = DASFeaturizer(network: network, settings: settings)
        let trainPath = try writeReal("train", count: 5, offset: 0)
        let train = try AttributionImages(resolving: trainPath, for: network)
        let out = dir + "/features.h5"
        let run = FeatureIndexRun(out: out, metadata: .init(model: "m", modelSHA256: sha, trainData: try train.provenance(), settings: settings),
                                  count: 5, dimension: 32, chunkSize: 2)
        XCTAssertTrue(try run.prepare())
        XCTAssertEqual(try run.index(0..<1, of: train, with: featurizer), 2)
        XCTAssertFalse(run.isComplete)
        XCTAssertEqual(try run.index(0..<3, of: train, with: featurizer), 3, "the finished chunk is skipped")
        XCTAssertTrue(run.isComplete)
        try run.assemble(trainPath: trainPath, createdBy: "test")

        // One call over all images, with the training noise stream: the same features.
        let noise = AttributionNoise(seed: 5)
        let all = try train.batch(0..<5)
        let direct = featurizer.features(images: all.images, classLabels: all.classLabels, count: 5) { i, t in
            noise.noise(.training, index: i, level: t, count: featurizer.imageSize)
        }
        let index = try AttributionFeatures(path: out)
        XCTAssertEqual(index.features, direct.features)
        XCTAssertEqual(index.weights, direct.weights)

        let query = try AttributionQuery(featuresPath: out, network: network, modelPath: modelPath, modelSHA256: sha)
        let (kernel, computed) = try query.kernel(damping: 0.01)
        XCTAssertTrue(computed)
        XCTAssertFalse(try query.kernel(damping: 0.01).computed, "kept beside the features")
        let queryPath = try writeReal("query", count: 3, offset: 40)
        let queries = try AttributionImages(resolving: queryPath, for: network)
        let result = try query.attribute(queries, queryPath: queryPath, kernel: kernel, top: 2, batch: 2)
        XCTAssertEqual(result.queryIndex, [0, 1, 2])
        XCTAssertEqual(result.top, 2)

        let q = try queries.batch(0..<3)
        let phi = featurizer.features(images: q.images, classLabels: q.classLabels, count: 3) { i, t in
            noise.noise(.query, index: i, level: t, count: featurizer.imageSize)
        }.features
        let scores = kernel.scores(queries: phi, queryCount: 3, features: index.features, count: 5, dimension: 32, weights: index.weights)
        for row in 0..<3 {
            let best = TopScores(scores[(row * 5)..<((row + 1) * 5)], top: 2)
            XCTAssertEqual(Array(result.trainIndex[(row * 2)..<(row * 2 + 2)]), best.indices.map(Int64.init))
            XCTAssertEqual(Array(result.scores[(row * 2)..<(row * 2 + 2)]), best.scores.map(Float.init))
            XCTAssertGreaterThanOrEqual(result.scores[row * 2], result.scores[row * 2 + 1])
        }

        // The sheet: a row per query, the query then its best training images.
        let attributions = dir + "/attributions.h5"
        try result.write(to: attributions, createdBy: "test")
        let (sheet, rows, columns) = try Attributions.sheet(attributions, queries: 2)
        XCTAssertEqual(rows, 2)
        XCTAssertEqual(columns, 2)
        XCTAssertEqual(sheet.images.count, 2 * 3)
        XCTAssertThrowsError(try Attributions.sheet(dir + "/none.h5", queries: 2)) { XCTAssertEqual("\($0)", dir + "/none.h5: no such file") }

        XCTAssertThrowsError(try AttributionQuery(featuresPath: out, network: network, modelPath: "other.safetensors", modelSHA256: "00")) {
            XCTAssertEqual("\($0)", "other.safetensors: not the model \(out) was made with (m, SHA-256 differs); pass it with --model")
        }
    }
}

import CSMAttribution
import CSMFormats
import CSMModels
import XCTest

/// Exact (`--proj-dim 0`) DAS scores and error weights against the PyTorch reference
/// (tools/fixtures/make_das_fixture.py: torch.func per-sample gradients on the same inputs and noise).
final class DASReferenceTests: XCTestCase {
    func testExactScoresEqualTheReference() throws {
        let reference = try SafeTensorsFile(path: fixture("attribution/das-exact.safetensors"))
        let network = try TrainableUNet(path: fixture("edm/\(reference.metadata["model"] ?? "")"))
        let sigmas = try reference.floats("sigmas").map(Double.init)
        let damping = try XCTUnwrap(Double(reference.metadata["damping"] ?? ""))
        let settings = AttributionSettings(sigmas: sigmas, noiseSeed: 0, projectionDimension: 0, projectionSeed: 0, weighting: .error)
        let featurizer = DASFeaturizer(network: network, settings: settings)
        let size = featurizer.imageSize, levels = sigmas.count

        func run(_ prefix: String) throws -> (features: [Float], weights: [Float], count: Int) {
            let images = try reference.floats("\(prefix)_images"), noise = try reference.floats("\(prefix)_noise")
            let count = images.count / size
            let result = featurizer.features(images: images, classLabels: try reference.floats("\(prefix)_labels"), count: count) { i, t in
                Array(noise[((i * levels + t) * size)..<((i * levels + t + 1) * size)])
            }
            return (result.features, result.weights, count)
        }
        let train = try run("train"), queries = try run("query")
        let expectedWeights = try reference.floats("weights")
        for (got, expected) in zip(train.weights, expectedWeights) {
            XCTAssertEqual(got, expected, accuracy: 1e-4 * expected)
        }
        let kernel = try AttributionKernel(features: train.features, count: train.count, dimension: featurizer.featureDimension,
                                           damping: damping)
        XCTAssertEqual(kernel.form, .gram)
        let scores = kernel.scores(queries: queries.features, queryCount: queries.count, features: train.features, count: train.count,
                                   dimension: featurizer.featureDimension, weights: train.weights)
        let expected = try reference.floats("scores")
        var worst = 0.0
        for q in 0..<queries.count {
            let row = expected[(q * train.count)..<((q + 1) * train.count)]
            let scale = row.map { abs(Double($0)) }.max()!
            for i in 0..<train.count {
                let error = abs(scores[q * train.count + i] - Double(row[row.startIndex + i])) / scale
                worst = max(worst, error)
                XCTAssertLessThanOrEqual(error, 1e-3, "query \(q), training image \(i)")
            }
        }
        print("DAS exact scores: worst error \(worst) of the query's largest |score|")
    }
}

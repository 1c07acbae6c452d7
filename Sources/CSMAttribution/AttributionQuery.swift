import CSMFormats
import CSMModels
import Foundation

/// One `csm attribute query` run: query images scored against a features file, kept as the
/// best `top` training images per query (docs/formats/attribution.md).
///
/// The query features are made exactly as the training features were (same network, noise
/// levels and projection), with the noise drawn from the query stream.
public struct AttributionQuery {
    /// The features file and its contents.
    public let featuresPath: String
    public let index: AttributionFeatures
    /// The features file's SHA-256 (recorded in the kernel file and the attributions).
    public let featuresSHA256: String
    /// Makes query features as the index's were made.
    public let featurizer: DASFeaturizer

    /// Reads `featuresPath` and checks that `network` (read from `modelPath`, whose SHA-256
    /// is `modelSHA256`) is the one its features were made with.
    public init(featuresPath: String, network: TrainableUNet, modelPath: String, modelSHA256: String) throws {
        let index = try AttributionFeatures(path: featuresPath)
        guard modelSHA256 == index.metadata.modelSHA256 else {
            throw FileError(modelPath, "not the model \(featuresPath) was made with (\(index.metadata.model), SHA-256 differs); pass it with --model")
        }
        let featurizer = DASFeaturizer(network: network, settings: index.metadata.settings)
        guard featurizer.featureDimension == index.dimension else {
            throw FileError(featuresPath, "features have \(index.dimension) columns but the model gives \(featurizer.featureDimension)")
        }
        self.featuresPath = featuresPath
        self.index = index
        self.featuresSHA256 = try FileHash.sha256(ofFile: featuresPath)
        self.featurizer = featurizer
    }

    /// The inverse of the damped kernel ΦᵀΦ + λI: the one kept beside the features
    /// (`KernelFile`), or computed now and kept there (`computed` true).
    public func kernel(damping: Double) throws -> (kernel: AttributionKernel, computed: Bool) {
        let path = KernelFile.path(forFeatures: featuresPath)
        if let stored = try KernelFile.read(path, featuresSHA256: featuresSHA256, damping: damping) { return (stored, false) }
        let kernel: AttributionKernel
        do {
            kernel = try AttributionKernel(features: index.features, count: index.count, dimension: index.dimension, damping: damping)
        } catch let error as AttributionKernel.NotPositiveDefinite {
            throw FileError(featuresPath, error.description)
        }
        try KernelFile.write(kernel, featuresSHA256: featuresSHA256, to: path)
        return (kernel, true)
    }

    /// Scores every image of `queries` (`batch` at a time) and keeps its best `top` training
    /// images. `imageDone` is called (from worker threads) after each query image.
    public func attribute(_ queries: AttributionImages, queryPath: String, kernel: AttributionKernel, top: Int, batch: Int,
                          imageDone: @escaping @Sendable () -> Void = {}) throws -> Attributions {
        precondition(top >= 1 && batch >= 1, "AttributionQuery: top and batch must be positive")
        let noise = AttributionNoise(seed: index.metadata.settings.noiseSeed)
        let size = featurizer.imageSize, keep = min(top, index.count)
        var trainIndex: [Int64] = [], scores: [Float] = []
        for start in stride(from: 0, to: queries.count, by: batch) {
            let rows = start..<min(queries.count, start + batch)
            let images = try queries.batch(rows)
            let phi = featurizer.features(images: images.images, classLabels: images.classLabels, count: rows.count,
                                          noise: { i, t in noise.noise(.query, index: rows.lowerBound + i, level: t, count: size) },
                                          imageDone: imageDone).features
            let all = kernel.scores(queries: phi, queryCount: rows.count, features: index.features, count: index.count,
                                    dimension: index.dimension, weights: index.weights)
            for q in 0..<rows.count {
                let best = TopScores(all[(q * index.count)..<((q + 1) * index.count)], top: keep)
                trainIndex += best.indices.map { index.trainIndex[$0] }
                scores += best.scores.map { Float($0) }
            }
        }
        return Attributions(queryIndex: (0..<queries.count).map(Int64.init), trainIndex: trainIndex, scores: scores, top: keep,
                            damping: kernel.damping, features: (featuresPath as NSString).lastPathComponent, featuresSHA256: featuresSHA256,
                            trainData: index.metadata.trainData, queryData: try queries.provenance(), trainPath: index.trainPath,
                            queryPath: URL(fileURLWithPath: queryPath).standardizedFileURL.path)
    }
}

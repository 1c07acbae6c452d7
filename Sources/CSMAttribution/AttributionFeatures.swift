import CSMFormats
import CSMHDF5
import CSMShards
import Foundation

/// A `csm-attribution-features/1` file (docs/formats/attribution.md): the training features
/// Φ, their training indices and weights, and what made them.
public struct AttributionFeatures: Sendable {
    /// The schema name written to every features file.
    public static let schema = "csm-attribution-features/1"

    /// The root attributes: everything that decides the features' values.
    public struct Metadata: Equatable, Sendable, Codable {
        /// The model's file name and SHA-256.
        public var model: String
        public var modelSHA256: String
        /// The training data: `AttributionImages.provenance()`.
        public var trainData: String
        public var settings: AttributionSettings

        public init(model: String, modelSHA256: String, trainData: String, settings: AttributionSettings) {
            self.model = model
            self.modelSHA256 = modelSHA256
            self.trainData = trainData
            self.settings = settings
        }
    }

    public var metadata: Metadata
    /// The training data's path as given to `csm attribute index` (for pictures; not part
    /// of the configuration).
    public var trainPath: String
    /// Φ, count × dimension, row-major.
    public var features: [Float]
    /// Each row's training index.
    public var trainIndex: [Int64]
    /// w_i.
    public var weights: [Float]
    /// k.
    public var dimension: Int
    /// N.
    public var count: Int { trainIndex.count }

    public init(metadata: Metadata, trainPath: String, features: [Float], trainIndex: [Int64], weights: [Float], dimension: Int) {
        precondition(features.count == trainIndex.count * dimension && weights.count == trainIndex.count,
                     "AttributionFeatures: columns of different lengths")
        self.metadata = metadata
        self.trainPath = trainPath
        self.features = features
        self.trainIndex = trainIndex
        self.weights = weights
        self.dimension = dimension
    }

    /// Writes the file atomically; identical contents give identical bytes.
    public func write(to path: String, createdBy: String) throws {
        try AtomicFile.write(to: path) { temporary in
            try HDF5.locked {
                let (file, root) = try HDF5.createReproducibleFile(temporary, path: path)
                let m = metadata, s = m.settings
                try HDF5.writeString(root, "schema", Self.schema, path)
                try HDF5.writeString(root, "model", m.model, path)
                try HDF5.writeString(root, "model_sha256", m.modelSHA256, path)
                try HDF5.writeString(root, "train_data", m.trainData, path)
                try HDF5.writeString(root, "train_path", trainPath, path)
                try HDF5.writeString(root, "sigmas", try Self.json(s.sigmas), path)
                try HDF5.writeInteger(root, "noise_seed", Int64(s.noiseSeed), path)
                try HDF5.writeInteger(root, "proj_dim", Int64(s.projectionDimension), path)
                try HDF5.writeInteger(root, "proj_seed", Int64(s.projectionSeed), path)
                try HDF5.writeString(root, "weight", s.weighting.rawValue, path)
                try HDF5.writeString(root, "created_by", createdBy, path)
                let chunkRows = max(1, (1 << 20) / (4 * max(1, dimension)))
                // Gradient features are noise to deflate: chunked and checksummed, not compressed.
                try HDF5.writeDataset(file, "features", features, dims: [count, dimension], type: .float32, chunkRows: chunkRows,
                                      deflateLevel: 0, path)
                try HDF5.writeDataset(file, "train_index", trainIndex, dims: [count], type: .int64, chunkRows: 1 << 14, deflateLevel: 4, path)
                try HDF5.writeDataset(file, "weight", weights, dims: [count], type: .float32, chunkRows: 1 << 14, deflateLevel: 4, path)
                root.close()
                guard file.close() else { throw FileError(path, "cannot finish writing: \(HDF5.takeErrorMessage())") }
            }
        }
    }

    /// Reads and checks the file at `path`.
    public init(path: String) throws {
        let loaded: (Metadata, String, [Float], [Int64], [Float], Int) = try HDF5.locked {
            let (file, root) = try HDF5.openReadOnly(path)
            let metadata = try Self.readMetadata(root, path)
            let shape = try HDF5.datasetShape(file, "features", type: .float32, rank: 2, path)
            let indexShape = try HDF5.datasetShape(file, "train_index", type: .int64, rank: 1, path)
            let weightShape = try HDF5.datasetShape(file, "weight", type: .float32, rank: 1, path)
            guard indexShape == [shape[0]], weightShape == [shape[0]] else {
                throw FileError(path, "features has \(shape[0]) rows but train_index \(indexShape) and weight \(weightShape)")
            }
            let expected = metadata.settings.projectionDimension
            guard expected == 0 || shape[1] == expected else {
                throw FileError(path, dataset: "features", "has \(shape[1]) columns but proj_dim is \(expected)")
            }
            return (metadata, try HDF5.readString(root, "train_path", path), try HDF5.readRows(file, "features", shape: shape, rows: 0..<shape[0], type: .float32, path),
                    try HDF5.readRows(file, "train_index", shape: indexShape, rows: 0..<shape[0], type: .int64, path),
                    try HDF5.readRows(file, "weight", shape: weightShape, rows: 0..<shape[0], type: .float32, path), shape[1])
        }
        self.init(metadata: loaded.0, trainPath: loaded.1, features: loaded.2, trainIndex: loaded.3, weights: loaded.4, dimension: loaded.5)
    }

    /// The root attributes of the file at `path`, without reading the features.
    public static func readMetadata(path: String) throws -> Metadata {
        try HDF5.locked { try readMetadata(try HDF5.openReadOnly(path).root, path) }
    }

    static func readMetadata(_ root: HDF5Handle, _ path: String) throws -> Metadata {
        guard HDF5.hasAttribute(root, "schema") else { throw FileError(path, "not a \(schema) file (no 'schema' attribute)") }
        let found = try HDF5.readString(root, "schema", path)
        guard found == schema else { throw FileError(path, dataset: "schema", "is '\(found)', expected \(schema)") }
        let sigmasText = try HDF5.readString(root, "sigmas", path)
        guard let sigmas = try? JSONDecoder().decode([Double].self, from: Data(sigmasText.utf8)), !sigmas.isEmpty,
              sigmas.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw FileError(path, dataset: "sigmas", "is not a JSON list of positive noise levels")
        }
        let weightName = try HDF5.readString(root, "weight", path)
        guard let weighting = AttributionWeighting(rawValue: weightName) else {
            throw FileError(path, dataset: "weight", "is '\(weightName)', expected error or none")
        }
        let noiseSeed = try HDF5.readInteger(root, "noise_seed", path), projectionSeed = try HDF5.readInteger(root, "proj_seed", path)
        let projectionDimension = try HDF5.readInteger(root, "proj_dim", path)
        guard noiseSeed >= 0, projectionSeed >= 0, projectionDimension >= 0 else {
            throw FileError(path, "noise_seed, proj_seed and proj_dim must not be negative")
        }
        let settings = AttributionSettings(sigmas: sigmas, noiseSeed: UInt64(noiseSeed), projectionDimension: projectionDimension,
                                           projectionSeed: UInt64(projectionSeed), weighting: weighting)
        return Metadata(model: try HDF5.readString(root, "model", path), modelSHA256: try HDF5.readString(root, "model_sha256", path),
                        trainData: try HDF5.readString(root, "train_data", path), settings: settings)
    }

    /// A JSON list, as the files store lists.
    static func json(_ values: [Double]) throws -> String {
        String(decoding: try JSONEncoder().encode(values), as: UTF8.self)
    }
}

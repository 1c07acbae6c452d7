import CSMFormats
import CSMHDF5
import CSMShards
import Foundation

/// A `csm-attributions/1` file (docs/formats/attribution.md): for each query its best `top`
/// training indices and scores, best first.
public struct Attributions: Sendable {
    public static let schema = "csm-attributions/1"

    /// Position of each query in the query set.
    public var queryIndex: [Int64]
    /// Q × top training indices, best first.
    public var trainIndex: [Int64]
    /// Q × top scores.
    public var scores: [Float]
    public var top: Int
    public var damping: Double
    /// The features file's name and SHA-256.
    public var features: String
    public var featuresSHA256: String
    /// The training data the features came from (`AttributionImages.provenance()`).
    public var trainData: String
    /// The query data (`AttributionImages.provenance()`).
    public var queryData: String
    /// The training and query data's paths as given on the command line (for pictures).
    public var trainPath: String
    public var queryPath: String

    public var queryCount: Int { queryIndex.count }

    public init(queryIndex: [Int64], trainIndex: [Int64], scores: [Float], top: Int, damping: Double, features: String,
                featuresSHA256: String, trainData: String, queryData: String, trainPath: String, queryPath: String) {
        precondition(trainIndex.count == queryIndex.count * top && scores.count == trainIndex.count, "Attributions: columns do not match")
        self.queryIndex = queryIndex
        self.trainIndex = trainIndex
        self.scores = scores
        self.top = top
        self.damping = damping
        self.features = features
        self.featuresSHA256 = featuresSHA256
        self.trainData = trainData
        self.queryData = queryData
        self.trainPath = trainPath
        self.queryPath = queryPath
    }

    /// Writes the file atomically.
    public func write(to path: String, createdBy: String) throws {
        try AtomicFile.write(to: path) { temporary in
            try HDF5.locked {
                let (file, root) = try HDF5.createReproducibleFile(temporary, path: path)
                try HDF5.writeString(root, "schema", Self.schema, path)
                try HDF5.writeDouble(root, "damping", damping, path)
                try HDF5.writeInteger(root, "top", Int64(top), path)
                try HDF5.writeString(root, "features", features, path)
                try HDF5.writeString(root, "features_sha256", featuresSHA256, path)
                try HDF5.writeString(root, "train_data", trainData, path)
                try HDF5.writeString(root, "query_data", queryData, path)
                try HDF5.writeString(root, "train_path", trainPath, path)
                try HDF5.writeString(root, "query_path", queryPath, path)
                try HDF5.writeString(root, "created_by", createdBy, path)
                try HDF5.writeDataset(file, "query_index", queryIndex, dims: [queryCount], type: .int64, chunkRows: 4096, deflateLevel: 4, path)
                try HDF5.writeDataset(file, "train_index", trainIndex, dims: [queryCount, top], type: .int64, chunkRows: 1024,
                                      deflateLevel: 4, path)
                try HDF5.writeDataset(file, "score", scores, dims: [queryCount, top], type: .float32, chunkRows: 1024, deflateLevel: 4, path)
                root.close()
                guard file.close() else { throw FileError(path, "cannot finish writing: \(HDF5.takeErrorMessage())") }
            }
        }
    }

    /// Reads and checks the file at `path`.
    public init(path: String) throws {
        self = try HDF5.locked {
            let (file, root) = try HDF5.openReadOnly(path)
            guard HDF5.hasAttribute(root, "schema") else { throw FileError(path, "not a \(Self.schema) file (no 'schema' attribute)") }
            let found = try HDF5.readString(root, "schema", path)
            guard found == Self.schema else { throw FileError(path, dataset: "schema", "is '\(found)', expected \(Self.schema)") }
            let top = try HDF5.readInteger(root, "top", path)
            let queries = try HDF5.datasetShape(file, "query_index", type: .int64, rank: 1, path)
            let indices = try HDF5.datasetShape(file, "train_index", type: .int64, rank: 2, path)
            let scores = try HDF5.datasetShape(file, "score", type: .float32, rank: 2, path)
            guard indices == [queries[0], top], scores == indices else {
                throw FileError(path, "train_index \(indices) and score \(scores) are not [\(queries[0]), top = \(top)]")
            }
            let rows = 0..<queries[0]
            return Attributions(
                queryIndex: try HDF5.readRows(file, "query_index", shape: queries, rows: rows, type: .int64, path),
                trainIndex: try HDF5.readRows(file, "train_index", shape: indices, rows: rows, type: .int64, path),
                scores: try HDF5.readRows(file, "score", shape: scores, rows: rows, type: .float32, path), top: top,
                damping: try HDF5.readDouble(root, "damping", path), features: try HDF5.readString(root, "features", path),
                featuresSHA256: try HDF5.readString(root, "features_sha256", path), trainData: try HDF5.readString(root, "train_data", path),
                queryData: try HDF5.readString(root, "query_data", path), trainPath: try HDF5.readString(root, "train_path", path),
                queryPath: try HDF5.readString(root, "query_path", path))
        }
    }
}

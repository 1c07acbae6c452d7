import CSMFormats
import CSMHDF5
import Foundation

/// Reads a `csm-shard/1` file (docs/formats/csm-shard.md). Opening validates the schema:
/// the root attributes, every dataset's presence, element type and shape. Reads are of whole
/// datasets or of a range of samples; a corrupted chunk (Fletcher-32 mismatch, broken
/// compression) surfaces as a `FileError` naming the file and the dataset. Safe to use from
/// several threads: all HDF5 calls are serialised.
public final class ShardReader: @unchecked Sendable {
    /// The file read.
    public let path: String
    /// The root attributes.
    public let metadata: ShardMetadata
    /// Number of samples N.
    public let count: Int
    /// Image height H.
    public let height: Int
    /// Image width W.
    public let width: Int
    /// Image channels C.
    public let channels: Int
    private let file: HDF5Handle

    /// Number of classes K.
    public var numClasses: Int { metadata.numClasses }

    /// Opens and validates the shard at `path`.
    public init(path: String) throws {
        self.path = path
        let opened: (HDF5Handle, ShardMetadata, [Int]) = try HDF5.locked {
            let (file, root) = try HDF5.openReadOnly(path, expecting: "a shard")
            let metadata = try Self.readMetadata(root, path)
            let imageShape = try Self.validateDatasets(file, path, classes: metadata.numClasses)
            return (file, metadata, imageShape)
        }
        file = opened.0
        metadata = opened.1
        count = opened.2[0]
        height = opened.2[1]
        width = opened.2[2]
        channels = opened.2[3]
    }

    deinit { file.close() }

    // MARK: Reading

    /// Pixels [n, H, W, C] of samples `rows` (all when nil).
    public func images(rows: Range<Int>? = nil) throws -> [UInt8] { try read(.images, rows: rows, UInt8.self) }
    /// Soft labels [n, K].
    public func labels(rows: Range<Int>? = nil) throws -> [Float] { try read(.labels, rows: rows, Float.self) }
    public func classA(rows: Range<Int>? = nil) throws -> [Int32] { try read(.classA, rows: rows, Int32.self) }
    public func classB(rows: Range<Int>? = nil) throws -> [Int32] { try read(.classB, rows: rows, Int32.self) }
    public func lambdaGen(rows: Range<Int>? = nil) throws -> [Float] { try read(.lambdaGen, rows: rows, Float.self) }
    public func lambdaProj(rows: Range<Int>? = nil) throws -> [Float] { try read(.lambdaProj, rows: rows, Float.self) }
    public func probA(rows: Range<Int>? = nil) throws -> [Float] { try read(.probA, rows: rows, Float.self) }
    public func probB(rows: Range<Int>? = nil) throws -> [Float] { try read(.probB, rows: rows, Float.self) }
    public func consistent(rows: Range<Int>? = nil) throws -> [UInt8] { try read(.consistent, rows: rows, UInt8.self) }
    public func group(rows: Range<Int>? = nil) throws -> [Int64] { try read(.group, rows: rows, Int64.self) }
    public func seed(rows: Range<Int>? = nil) throws -> [Int64] { try read(.seed, rows: rows, Int64.self) }

    /// Every column of samples `rows` (all when nil).
    public func read(rows: Range<Int>? = nil) throws -> ShardSamples {
        ShardSamples(height: height, width: width, channels: channels, numClasses: numClasses,
                     images: try images(rows: rows), labels: try labels(rows: rows),
                     classA: try classA(rows: rows), classB: try classB(rows: rows),
                     lambdaGen: try lambdaGen(rows: rows), lambdaProj: try lambdaProj(rows: rows),
                     probA: try probA(rows: rows), probB: try probB(rows: rows),
                     consistent: try consistent(rows: rows), group: try group(rows: rows), seed: try seed(rows: rows))
    }

    /// Every column but the images (left empty) of samples `rows` (all when nil), with the
    /// values that index anything checked first (see `ShardSamples.checkValues`): what a
    /// loader or training loop reads.
    public func columns(rows: Range<Int>? = nil) throws -> ShardSamples {
        let samples = ShardSamples(
            height: height, width: width, channels: channels, numClasses: numClasses, images: [],
            labels: try labels(rows: rows), classA: try classA(rows: rows), classB: try classB(rows: rows),
            lambdaGen: try lambdaGen(rows: rows), lambdaProj: try lambdaProj(rows: rows), probA: try probA(rows: rows),
            probB: try probB(rows: rows), consistent: try consistent(rows: rows), group: try group(rows: rows), seed: try seed(rows: rows))
        try samples.checkValues(path: path, kind: metadata.kind, firstRow: rows?.lowerBound ?? 0)
        return samples
    }

    /// Reads every dataset in full, so that every chunk's checksum is checked.
    public func verify() throws {
        for dataset in ShardDataset.allCases {
            switch dataset.elementType {
            case .uint8: _ = try read(dataset, rows: nil, UInt8.self)
            case .int32: _ = try read(dataset, rows: nil, Int32.self)
            case .int64: _ = try read(dataset, rows: nil, Int64.self)
            case .float32: _ = try read(dataset, rows: nil, Float.self)
            case .float64: _ = try read(dataset, rows: nil, Double.self)
            }
        }
    }

    /// Where `dataset`'s stored chunks lie in the file, as byte ranges in storage order
    /// (for verification tools and corruption tests).
    public func storageRanges(of dataset: ShardDataset) throws -> [Range<Int>] {
        try HDF5.locked { try HDF5.storageRanges(file, dataset.name, path) }
    }

    private func read<T>(_ dataset: ShardDataset, rows: Range<Int>?, _ type: T.Type) throws -> [T] {
        let shape = [count] + dataset.rowShape(height: height, width: width, channels: channels, classes: numClasses)
        return try HDF5.locked {
            try HDF5.readRows(file, dataset.name, shape: shape, rows: rows ?? 0..<count, type: dataset.elementType, path)
        }
    }

    // MARK: Validation

    private static func readMetadata(_ root: HDF5Handle, _ path: String) throws -> ShardMetadata {
        guard HDF5.hasAttribute(root, "schema") else { throw FileError(path, "not a csm-shard/1 file (no 'schema' attribute)") }
        let schema = try HDF5.readString(root, "schema", path)
        guard schema == ShardMetadata.schema else {
            throw FileError(path, dataset: "schema", "is '\(schema)', expected \(ShardMetadata.schema)")
        }
        let kindName = try HDF5.readString(root, "kind", path)
        guard let kind = ShardKind(rawValue: kindName) else {
            throw FileError(path, dataset: "kind", "is '\(kindName)', expected mixed or real")
        }
        let numClasses = try HDF5.readInteger(root, "num_classes", path)
        let namesText = try HDF5.readString(root, "class_names", path)
        guard let names = ClassNames.parse(namesText) else {
            throw FileError(path, dataset: "class_names", "is not a JSON list of strings")
        }
        guard names.count == numClasses else {
            throw FileError(path, dataset: "class_names", "has \(names.count) names but num_classes is \(numClasses)")
        }
        let metadata = ShardMetadata(
            kind: kind, classNames: names, sharpness: try HDF5.readDouble(root, "sharpness", path),
            generator: try HDF5.readString(root, "generator", path), annotator: try HDF5.readString(root, "annotator", path),
            shardIndex: try HDF5.readInteger(root, "shard_index", path), numShards: try HDF5.readInteger(root, "num_shards", path),
            createdBy: try HDF5.readString(root, "created_by", path))
        try metadata.validate(path: path)
        return metadata
    }

    /// Checks every dataset's type and shape; returns [N, H, W, C].
    private static func validateDatasets(_ file: HDF5Handle, _ path: String, classes: Int) throws -> [Int] {
        var imageShape: [Int] = []
        for dataset in ShardDataset.allCases {
            let name = dataset.name
            let shape = try HDF5.datasetShape(file, name, type: dataset.elementType, rank: nil, path)
            if dataset == .images {
                guard shape.count == 4, shape[1] > 0, shape[2] > 0, shape[3] > 0 else {
                    throw FileError(path, dataset: name, "has shape \(shape), expected [N, H, W, C]")
                }
                imageShape = shape
                continue
            }
            let expectedShape = [imageShape[0]] + dataset.rowShape(height: imageShape[1], width: imageShape[2],
                                                                  channels: imageShape[3], classes: classes)
            guard shape == expectedShape else {
                throw FileError(path, dataset: name, "has shape \(shape), expected \(expectedShape)")
            }
        }
        return imageShape
    }
}

import CSMFormats
import CSMHDF5
import Foundation

/// Writes `csm-shard/1` HDF5 files (docs/formats/csm-shard.md).
///
/// Every dataset is chunked along the sample axis and stored with shuffle, deflate and
/// HDF5's Fletcher-32 checksum, so that a flipped byte is caught on read. The file is
/// written through `AtomicFile` (a temporary `.NAME.h5.tmp` beside it, synced, renamed
/// into place only when complete). Identical input gives byte-identical files: no object
/// timestamps, fixed object order, and the file format pinned to HDF5 1.8's.
public struct ShardWriter: Sendable {
    /// zlib level, 0–9.
    public var deflateLevel: Int
    /// Approximate bytes per chunk (at least one sample per chunk).
    public var chunkBytes: Int

    public init(deflateLevel: Int = 4, chunkBytes: Int = 1 << 16) {
        self.deflateLevel = deflateLevel
        self.chunkBytes = chunkBytes
    }

    /// The temporary name `path` is written under before it is renamed into place.
    public static func temporaryPath(for path: String) -> String { AtomicFile.temporaryPath(for: path) }

    /// Writes `samples` with `metadata` to `path`, replacing any file there.
    public func write(_ samples: ShardSamples, metadata: ShardMetadata, to path: String) throws {
        try metadata.validate(path: path)
        try samples.validate(path: path)
        guard samples.numClasses == metadata.numClasses else {
            throw FileError(path, dataset: "labels", "\(samples.numClasses) classes but class_names has \(metadata.numClasses)")
        }
        guard (0...9).contains(deflateLevel), chunkBytes > 0 else {
            throw FileError(path, "deflate level must be 0–9 and chunk size positive")
        }
        try AtomicFile.write(to: path) { temporary in
            try HDF5.locked { try writeFile(samples, metadata: metadata, temporary: temporary, path: path) }
        }
    }

    private func writeFile(_ samples: ShardSamples, metadata: ShardMetadata, temporary: String, path: String) throws {
        let (file, root) = try HDF5.createReproducibleFile(temporary, path: path)
        try HDF5.writeString(root, "schema", ShardMetadata.schema, path)
        try HDF5.writeString(root, "kind", metadata.kind.rawValue, path)
        try HDF5.writeInteger(root, "num_classes", Int64(metadata.numClasses), path)
        try HDF5.writeString(root, "class_names", metadata.classNamesJSON, path)
        try HDF5.writeDouble(root, "sharpness", metadata.sharpness, path)
        try HDF5.writeString(root, "generator", metadata.generator, path)
        try HDF5.writeString(root, "annotator", metadata.annotator, path)
        try HDF5.writeInteger(root, "shard_index", Int64(metadata.shardIndex), path)
        try HDF5.writeInteger(root, "num_shards", Int64(metadata.numShards), path)
        try HDF5.writeString(root, "created_by", metadata.createdBy, path)

        let s = samples
        for dataset in ShardDataset.allCases {
            let rowShape = dataset.rowShape(height: s.height, width: s.width, channels: s.channels, classes: s.numClasses)
            switch dataset {
            case .images: try writeDataset(file, dataset, s.images, count: s.count, rowShape: rowShape, path)
            case .labels: try writeDataset(file, dataset, s.labels, count: s.count, rowShape: rowShape, path)
            case .classA: try writeDataset(file, dataset, s.classA, count: s.count, rowShape: rowShape, path)
            case .classB: try writeDataset(file, dataset, s.classB, count: s.count, rowShape: rowShape, path)
            case .lambdaGen: try writeDataset(file, dataset, s.lambdaGen, count: s.count, rowShape: rowShape, path)
            case .lambdaProj: try writeDataset(file, dataset, s.lambdaProj, count: s.count, rowShape: rowShape, path)
            case .probA: try writeDataset(file, dataset, s.probA, count: s.count, rowShape: rowShape, path)
            case .probB: try writeDataset(file, dataset, s.probB, count: s.count, rowShape: rowShape, path)
            case .consistent: try writeDataset(file, dataset, s.consistent, count: s.count, rowShape: rowShape, path)
            case .group: try writeDataset(file, dataset, s.group, count: s.count, rowShape: rowShape, path)
            case .seed: try writeDataset(file, dataset, s.seed, count: s.count, rowShape: rowShape, path)
            }
        }
        root.close()
        guard file.close() else { throw FileError(path, "cannot finish writing: \(HDF5.takeErrorMessage())") }
    }

    /// One column, chunked to about `chunkBytes` per chunk.
    private func writeDataset<T>(_ file: HDF5Handle, _ dataset: ShardDataset, _ values: [T], count: Int, rowShape: [Int], _ path: String) throws {
        let rowBytes = max(1, rowShape.reduce(dataset.elementType.size, *))
        try HDF5.writeDataset(file, dataset.name, values, dims: [count] + rowShape, type: dataset.elementType,
                              chunkRows: max(1, chunkBytes / rowBytes), deflateLevel: deflateLevel, path)
    }
}

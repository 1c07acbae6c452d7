import CSMFormats
import CSMShards
import Foundation

/// Writes an imported dataset as real-data shards (docs/formats/csm-shard.md) named
/// `real-<split>-00000.h5`, `real-<split>-00001.h5`, … plus a `manifest.json` recording each
/// finished shard and `config` (the import's source description).
public struct RealDataImport: Sendable {
    /// Samples per shard (the last shard may hold fewer).
    public var shardSize: Int
    /// The split name used in file names (train, test, …).
    public var split: String
    /// The tool and version written as `created_by`.
    public var createdBy: String
    public var writer = ShardWriter()

    public init(split: String, shardSize: Int = 10_000, createdBy: String) {
        self.split = split
        self.shardSize = shardSize
        self.createdBy = createdBy
    }

    /// The file name of shard `index`.
    public func shardName(_ index: Int) -> String { String(format: "real-%@-%05d.h5", split, index) }

    /// Writes `data` under `directory` (created if needed); `progress` gets the samples
    /// written so far. Returns the manifest written.
    @discardableResult
    public func write(_ data: LabeledImages, to directory: String, config: JSONValue,
                      progress: ((Int) -> Void)? = nil) throws -> Manifest {
        guard shardSize > 0 else { throw FileError(directory, "shard size must be positive, got \(shardSize)") }
        guard data.count > 0 else { throw FileError(directory, "nothing to import: the dataset is empty") }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileError(directory, "cannot create the output folder")
        }
        let numShards = (data.count + shardSize - 1) / shardSize
        let manifestPath = (directory as NSString).appendingPathComponent("manifest.json")
        var manifest = Manifest(config: config)
        let source = config.jsonText
        for index in 0..<numShards {
            let rows = (index * shardSize)..<min(data.count, (index + 1) * shardSize)
            let metadata = ShardMetadata(kind: .real, classNames: data.classNames, sharpness: .nan, generator: source,
                                         annotator: "{}", shardIndex: index, numShards: numShards, createdBy: createdBy)
            let name = shardName(index)
            let path = (directory as NSString).appendingPathComponent(name)
            try writer.write(data.realSamples(rows: rows), metadata: metadata, to: path)
            manifest.record(Manifest.Shard(file: name, count: rows.count, sha256: try FileHash.sha256(ofFile: path), shardIndex: index))
            try manifest.write(to: manifestPath)
            progress?(rows.upperBound)
        }
        return manifest
    }
}

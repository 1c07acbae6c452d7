import Crypto
import Foundation

/// `manifest.json` beside a run's shards (SPEC §4.3): every finished shard and the run's
/// configuration. A shard is recorded only once it is complete and renamed into place, so
/// a crashed run resumes from the manifest.
///
///     {"schema": "csm-manifest/1",
///      "shards": [{"file": "NAME.h5", "count": N, "sha256": "…", "shard_index": i}, …],
///      "config": {…}}
public struct Manifest: Codable, Equatable, Sendable {
    /// The schema name every manifest carries.
    public static let schemaName = "csm-manifest/1"

    /// One finished shard.
    public struct Shard: Codable, Equatable, Sendable {
        /// File name, relative to the manifest's directory.
        public var file: String
        /// Samples in the shard.
        public var count: Int
        /// SHA-256 of the shard file, lowercase hex.
        public var sha256: String
        public var shardIndex: Int

        public init(file: String, count: Int, sha256: String, shardIndex: Int) {
            self.file = file
            self.count = count
            self.sha256 = sha256
            self.shardIndex = shardIndex
        }

        enum CodingKeys: String, CodingKey {
            case file, count, sha256
            case shardIndex = "shard_index"
        }
    }

    public var schema: String
    /// Finished shards, in shard-index order.
    public var shards: [Shard]
    /// The run's configuration.
    public var config: JSONValue

    public init(shards: [Shard] = [], config: JSONValue = .object([:])) {
        schema = Self.schemaName
        self.shards = shards
        self.config = config
    }

    /// Adds `shard`, replacing any entry with the same shard index, and keeps the list in
    /// shard-index order.
    public mutating func record(_ shard: Shard) {
        shards.removeAll { $0.shardIndex == shard.shardIndex }
        shards.append(shard)
        shards.sort { $0.shardIndex < $1.shardIndex }
    }

    /// Samples over all recorded shards.
    public var totalCount: Int { shards.reduce(0) { $0 + $1.count } }

    /// Reads and validates the manifest at `path`.
    public static func read(from path: String) throws -> Manifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw ShardError(path, "cannot be read (missing?)") }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw ShardError(path, "is not a csm manifest: \(describe(error))")
        }
        guard manifest.schema == schemaName else {
            throw ShardError(path, dataset: "schema", "is '\(manifest.schema)', expected \(schemaName)")
        }
        for shard in manifest.shards {
            guard !shard.file.isEmpty, !shard.file.hasPrefix("/"), shard.count >= 0, shard.shardIndex >= 0 else {
                throw ShardError(path, dataset: "shards", "entry '\(shard.file)' is malformed")
            }
        }
        return manifest
    }

    /// The manifest as JSON: sorted keys, indented, so that equal manifests give equal bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Writes the manifest to `path` atomically: a temporary file beside it (`.NAME.tmp`),
    /// synced, then renamed over the old one.
    public func write(to path: String) throws {
        let data: Data
        do { data = try encoded() } catch { throw ShardError(path, "cannot encode: \(Self.describe(error))") }
        let temporary = ShardFiles.temporaryPath(for: path)
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                throw ShardError(path, "cannot write \(temporary)")
            }
            try ShardFiles.commit(temporary, to: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// SHA-256 of the file at `path`, lowercase hex.
    public static func sha256(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ShardError(path, "cannot be read for hashing") }
        defer { try? handle.close() }
        var hasher = SHA256()
        do {
            while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty {
                hasher.update(data: block)
            }
        } catch {
            throw ShardError(path, "read failed while hashing: \(describe(error))")
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let where_ = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "wrong type at '\(where_)'"
        case DecodingError.dataCorrupted: return "not valid JSON"
        default: return (error as NSError).localizedDescription.replacingOccurrences(of: "\n", with: " ")
        }
    }
}

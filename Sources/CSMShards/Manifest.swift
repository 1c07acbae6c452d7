import CSMFormats
import Foundation

/// `manifest.json` beside a run's shards (docs/formats/csm-shard.md): every finished shard
/// and the run's configuration. A shard is recorded only once it is complete and renamed into
/// place, so a crashed run resumes from the manifest.
///
///     {"schema": "csm-manifest/1",
///      "shards": [{"file": "NAME.h5", "count": N, "sha256": "…", "shard_index": i}, …],
///      "config": {…}}
public struct Manifest: Codable, Equatable, Sendable {
    /// The schema name every manifest carries.
    public static let schemaName = "csm-manifest/1"

    /// One finished shard.
    public struct Shard: Codable, Equatable, Sendable {
        /// The shard's file name: a plain name inside the manifest's directory (no `/`,
        /// not `.` or `..`); `read(from:)` refuses anything else.
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

    /// How many shards the whole run has (`config.num_shards`, which `csm generate`
    /// records), or nil when the configuration does not say.
    public var expectedShardCount: Int? {
        if case .int(let n)? = config["num_shards"], n >= 1, n <= Int64(Self.maxShardCount) { return Int(n) }
        return nil
    }

    /// The most shards one run may have. A larger `config.num_shards` is refused when a
    /// manifest is read, so that listing a run's missing shards stays small.
    public static let maxShardCount = 1_000_000

    /// The run's shard indices this manifest does not list, ascending; empty when the run is
    /// complete or the configuration gives no shard count.
    public var missingShardIndices: [Int] {
        Self.missing(expected: expectedShardCount, present: shards.map(\.shardIndex))
    }

    /// The indices of 0..<expected not in `present`; empty when `expected` is nil.
    public static func missing(expected: Int?, present: some Sequence<Int>) -> [Int] {
        guard let expected else { return [] }
        let have = Set(present)
        return (0..<expected).filter { !have.contains($0) }
    }

    /// "lacks shard 1 of 3" / "lacks shards 0–2, 5 of 8": indices as ascending runs.
    public static func describeMissing(_ indices: [Int], of expected: Int) -> String {
        var runs: [String] = []
        var start = indices.first, previous = indices.first
        for index in indices.dropFirst() + [Int.min] {
            if let p = previous, index == p + 1 { previous = index; continue }
            if let s = start, let p = previous { runs.append(s == p ? "\(s)" : p == s + 1 ? "\(s), \(p)" : "\(s)–\(p)") }
            start = index
            previous = index
        }
        return "lacks shard\(indices.count == 1 ? "" : "s") \(runs.joined(separator: ", ")) of \(expected)"
    }

    /// Reads and validates the manifest at `path`.
    public static func read(from path: String) throws -> Manifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError(path, "cannot be read (missing?)") }
        return try decode(data, path: path)
    }

    /// Parses and validates manifest bytes; `path` names them in errors. Every entry must
    /// name a plain file (see `isPlainFileName`), with a non-negative count and shard index,
    /// and no file or shard index may be listed twice.
    public static func decode(_ data: Data, path: String = "<bytes>") throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw FileError(path, "is not a csm manifest: \(describe(error))")
        }
        guard manifest.schema == schemaName else {
            throw FileError(path, dataset: "schema", "is '\(manifest.schema)', expected \(schemaName)")
        }
        if case .int(let n)? = manifest.config["num_shards"], !(1...Int64(maxShardCount)).contains(n) {
            throw FileError(path, dataset: "config.num_shards", "is \(n), expected 1 to \(maxShardCount)")
        }
        var files = Set<String>(), indices = Set<Int>()
        for shard in manifest.shards {
            guard isPlainFileName(shard.file) else {
                throw FileError(path, dataset: "shards", "entry '\(shard.file)' is not a plain file name inside the manifest's directory")
            }
            guard shard.count >= 0, shard.shardIndex >= 0 else {
                throw FileError(path, dataset: "shards", "entry '\(shard.file)' has a negative count or shard index")
            }
            guard files.insert(shard.file).inserted else { throw FileError(path, dataset: "shards", "lists \(shard.file) twice") }
            guard indices.insert(shard.shardIndex).inserted else {
                throw FileError(path, dataset: "shards", "lists shard index \(shard.shardIndex) twice")
            }
        }
        return manifest
    }

    /// Whether `name` is a plain file name: not empty, no `/` or NUL, not `.` or `..`.
    /// Manifest entries must be plain names, so that a manifest can only name files in its
    /// own directory.
    public static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }

    /// The manifest as JSON: sorted keys, indented, so that equal manifests give equal bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Writes the manifest to `path` through `AtomicFile`.
    public func write(to path: String) throws {
        let data: Data
        do { data = try encoded() } catch { throw FileError(path, "cannot encode: \(Self.describe(error))") }
        try AtomicFile.write(data, to: path)
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

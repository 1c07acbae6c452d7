import CSMFormats
import Foundation

/// The one rule that turns a path into shard files, used by the loader, `csm inspect`,
/// `csm prototypes`, `csm merge` and (in Python) the `csm_shards` package (python/):
///
/// 1. A directory holding `manifest.json`: the shards that manifest lists (rule 3).
/// 2. A directory without one: every `*.h5` file in it whose name does not start with `.`,
///    in name order; a directory with neither is an error.
/// 3. A file whose name ends in `.json`: a manifest. Its shards, in `shard_index` order, lie
///    in the manifest's directory: each `file` must be a plain file name (no `/`, not `.`
///    or `..`; so no absolute paths), no file or shard index may appear twice, and a listed
///    file that is a symbolic link must resolve to a file inside that directory.
/// 4. Any other file: that one shard. When a `manifest.json` beside it lists it, its entry
///    comes along (for checks), but the shard is read either way.
///
/// Missing shard files are not an error here: whoever opens them says so.
public struct ShardPaths: Sendable {
    /// Which rule found the shards.
    public enum Source: String, Codable, Sendable {
        /// A `manifest.json` (given directly or found in the directory).
        case manifest
        /// The `.h5` files of a directory without a manifest.
        case directory
        /// One shard file.
        case file
    }

    /// One shard file and, when a manifest lists it, its entry there.
    public struct Member: Sendable {
        /// Path of the shard file.
        public let path: String
        /// The manifest's entry for the file, if a manifest lists it.
        public let entry: Manifest.Shard?
    }

    /// The path resolved.
    public let path: String
    public let source: Source
    /// The directory the shards lie in.
    public let directory: String
    /// The manifest, for `.manifest`.
    public let manifest: Manifest?
    /// Where the manifest lies, for `.manifest`.
    public let manifestPath: String?
    /// The shards, in shard-index order (manifest) or name order (directory).
    public let members: [Member]

    /// Paths of the shard files, in order.
    public var files: [String] { members.map(\.path) }

    /// Resolves `path` by the rules above; throws a `FileError` naming the path (or the
    /// manifest) when it is missing, a manifest is invalid or names a file outside its
    /// directory, or a directory holds no shards.
    public init(resolving path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FileError(path, "no such file or directory")
        }
        if !isDirectory.boolValue && !path.hasSuffix(".json") {
            let parent = (path as NSString).deletingLastPathComponent
            directory = parent.isEmpty ? "." : parent
            let sibling = (directory as NSString).appendingPathComponent(Self.manifestName)
            let name = (path as NSString).lastPathComponent
            let entry = (try? Manifest.read(from: sibling))?.shards.first { $0.file == name }
            source = .file
            manifest = nil
            manifestPath = nil
            members = [Member(path: path, entry: entry)]
            return
        }
        if isDirectory.boolValue {
            directory = path
            let candidate = (path as NSString).appendingPathComponent(Self.manifestName)
            guard FileManager.default.fileExists(atPath: candidate) else {
                let shards = try Self.list(directory).filter { !$0.hasPrefix(".") && $0.hasSuffix(".h5") }
                guard !shards.isEmpty else { throw FileError(path, "holds no manifest.json and no .h5 shards") }
                source = .directory
                manifest = nil
                manifestPath = nil
                members = shards.map { Member(path: (path as NSString).appendingPathComponent($0), entry: nil) }
                return
            }
            manifestPath = candidate
        } else {
            let parent = (path as NSString).deletingLastPathComponent
            directory = parent.isEmpty ? "." : parent
            manifestPath = path
        }
        let manifestPath = self.manifestPath ?? path
        let manifest = try Manifest.read(from: manifestPath)
        source = .manifest
        self.manifest = manifest
        let directory = self.directory
        members = try manifest.shards.sorted { $0.shardIndex < $1.shardIndex }.map { entry in
            let file = (directory as NSString).appendingPathComponent(entry.file)
            try Self.checkInside(file, directory: directory, manifest: manifestPath)
            return Member(path: file, entry: entry)
        }
    }

    /// The manifest's file name inside a run's directory.
    public static let manifestName = "manifest.json"

    /// The sorted names in `directory`.
    public static func list(_ directory: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw FileError(directory, "cannot list the directory")
        }
    }

    /// Refuses a listed file that is a symbolic link resolving outside `directory`.
    private static func checkInside(_ file: String, directory: String, manifest: String) throws {
        guard (try? FileManager.default.destinationOfSymbolicLink(atPath: file)) != nil else { return }
        let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath().standardizedFileURL.path
        let target = URL(fileURLWithPath: file).resolvingSymlinksInPath().standardizedFileURL.path
        let parent = (target as NSString).deletingLastPathComponent
        guard parent == root else {
            throw FileError(manifest, dataset: "shards",
                            "entry '\((file as NSString).lastPathComponent)' is a symbolic link to \(target), outside the manifest's directory")
        }
    }
}

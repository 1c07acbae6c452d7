import CSMFormats
import CSMShards
import Foundation

/// The shard files behind one path, found by the one resolver (`ShardPaths`: a manifest, a
/// directory, or one shard file), plus what else lies in the directory, so that `verify()`
/// can report shards the manifest does not know about and the leftovers of an interrupted run.
public struct ShardCollection: Sendable {
    /// Where the list of shards came from.
    public typealias Source = ShardPaths.Source
    /// One shard file and, with a manifest, its entry there.
    public typealias Member = ShardPaths.Member

    /// The path the collection was opened from.
    public var path: String { resolved.path }
    public var source: Source { resolved.source }
    /// The manifest, for `.manifest` collections.
    public var manifest: Manifest? { resolved.manifest }
    /// Where the manifest lies, for `.manifest` collections.
    public var manifestPath: String? { resolved.manifestPath }
    /// The shards, in manifest order (shard index) or by file name.
    public var members: [Member] { resolved.members }
    /// `.h5` files in the manifest's directory that the manifest does not list.
    public let unlistedFiles: [String]
    /// Temporary files (`.NAME.tmp`) left by an interrupted write; never read.
    public let temporaryFiles: [String]
    private let resolved: ShardPaths

    /// Paths of the shard files, in order.
    public var shardPaths: [String] { resolved.files }

    /// Whether the manifest lists every shard of its run (`ShardCoverage`).
    public var coverage: ShardCoverage { ShardCoverage([resolved]) }

    /// Opens `path` through `ShardPaths` (a manifest, a directory, or a shard, checked against
    /// its entry in a `manifest.json` beside it, if one lists it). Throws the resolver's
    /// `FileError` when the path is missing, the manifest is invalid, or a directory holds
    /// neither a manifest nor any shard.
    public init(path: String) throws {
        resolved = try ShardPaths(resolving: path)
        guard resolved.source != .file else {
            unlistedFiles = []
            temporaryFiles = []
            return
        }
        let directory = resolved.directory
        let names = try ShardPaths.list(directory)
        func inDirectory(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        temporaryFiles = names.filter { $0.hasPrefix(".") && $0.hasSuffix(".tmp") }.map(inDirectory)
        let listed = Set(resolved.files.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        unlistedFiles = names.filter { !$0.hasPrefix(".") && $0.hasSuffix(".h5") }.map(inDirectory)
            .filter { !listed.contains(URL(fileURLWithPath: $0).standardizedFileURL.path) }
    }

    /// Size in bytes of the file at `path`, nil when it cannot be read.
    static func fileSize(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
    }
}

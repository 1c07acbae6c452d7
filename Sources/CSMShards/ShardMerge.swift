import CSMFormats
import Foundation

/// Joins the output directories of one split run (`csm generate` workers) into one
/// directory: every listed shard is checked against its manifest's SHA-256, copied (synced
/// and renamed into place) unless already there, and the merged manifest is written last.
/// Directories of another configuration, or a shard that differs from one already merged,
/// are refused; so is a run that lacks shards, unless `partial`. Merging again, or into one
/// of the inputs, is safe.
public enum ShardMerge {
    /// What a merge did.
    public struct Result: Sendable {
        /// Shards and samples the merged manifest lists.
        public var shards: Int
        public var samples: Int
        /// Shard files copied (the others were already in place).
        public var copied: Int
        /// What the run still lacks ("lacks shard 4 of 6"), nil when complete.
        public var lacking: String?
    }

    /// Merges the runs in `inputs` into `out` (see the type's description).
    public static func merge(_ inputs: [String], into out: String, partial: Bool, command: String = "csm merge") throws -> Result {
        let manifests = try inputs.map { dir -> (String, ShardPaths) in
            let resolved = try ShardPaths(resolving: dir)
            guard resolved.source == .manifest, resolved.manifest != nil else {
                throw FileError(dir, "no manifest (not a csm generate directory)")
            }
            return (dir, resolved)
        }
        let lock = try DirectoryLock(directory: out, command: command)
        defer { lock.release() }
        let config = manifests.first?.1.manifest?.config ?? .null
        for (dir, resolved) in manifests where resolved.manifest?.config != config {
            throw FileError(dir, "made with another configuration than \(manifests[0].0); cannot merge")
        }
        let outManifestPath = (out as NSString).appendingPathComponent("manifest.json")
        var merged = Manifest(config: config)
        if FileManager.default.fileExists(atPath: outManifestPath) {
            merged = try Manifest.read(from: outManifestPath)
            guard merged.config == config else { throw FileError(outManifestPath, "made with another configuration; cannot merge into it") }
        }
        let present = merged.shards.map(\.shardIndex) + manifests.flatMap { $0.1.manifest?.shards.map(\.shardIndex) ?? [] }
        let missing = Manifest.missing(expected: merged.expectedShardCount, present: present)
        let lacking = merged.expectedShardCount.map { Manifest.describeMissing(missing, of: $0) } ?? ""
        if !missing.isEmpty && !partial {
            throw FileError(out, "not merged: the run \(lacking) among the inputs (run the workers that write them, or pass --partial)")
        }
        var copied = 0
        for (dir, resolved) in manifests {
            for member in resolved.members {
                guard let shard = member.entry else { continue }
                if let existing = merged.shards.first(where: { $0.shardIndex == shard.shardIndex }), existing.sha256 != shard.sha256 {
                    throw FileError(dir, "shard \(shard.shardIndex) differs from the one already in \(out)")
                }
                let source = member.path
                guard try FileHash.sha256(ofFile: source) == shard.sha256 else {
                    throw FileError(source, "SHA-256 does not match its manifest (damaged or changed file)")
                }
                let target = (out as NSString).appendingPathComponent(shard.file)
                let same = URL(fileURLWithPath: source).standardizedFileURL.path == URL(fileURLWithPath: target).standardizedFileURL.path
                if !same && (try? FileHash.sha256(ofFile: target)) != shard.sha256 {
                    // Synced and renamed into place before the manifest below names it.
                    try AtomicFile.copy(source, to: target)
                    copied += 1
                }
                merged.record(shard)
            }
        }
        try merged.write(to: outManifestPath)
        return Result(shards: merged.shards.count, samples: merged.totalCount, copied: copied, lacking: missing.isEmpty ? nil : lacking)
    }
}

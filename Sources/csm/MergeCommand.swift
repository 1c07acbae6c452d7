import ArgumentParser
import CSMFormats
import CSMShards
import Foundation

/// `csm merge`: joins the directories of a split `csm generate` run into one.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the output directories of split generate runs into one directory and manifest.",
        discussion: """
            Every input must come from the same configuration (its manifest's config); shard \
            files are checked against their SHA-256, copied into --out (unless already there; \
            each copy is synced to the disk before the manifest names it) and listed in one \
            manifest. --out is locked while csm merge writes there.

            When the inputs (with what --out already holds) lack some of the run's shards, \
            csm merge writes nothing and fails naming the missing shard indices; --partial \
            merges what there is (the result says it is incomplete; csm merge the rest into \
            it later).

            Examples:
              csm generate --out part0 --shard-index 0 --num-shards 2
              csm generate --out part1 --shard-index 1 --num-shards 2
              csm merge part0 part1 --out data/mixed
            """)

    @Argument(help: "Directories written by csm generate.")
    var inputs: [String]
    @Option(help: "Output directory (may be one of the inputs).")
    var out: String
    @Flag(help: "Merge even when shards of the run are missing.")
    var partial = false

    func run() throws {
        do {
            try merge()
        } catch let error as FileError {
            throw CLIError(error.description)
        }
    }

    private func merge() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one input directory") }
        let manifests = try inputs.map { dir -> (String, ShardPaths) in
            let resolved = try ShardPaths(resolving: dir)
            guard resolved.source == .manifest, resolved.manifest != nil else {
                throw CLIError("\(dir): no manifest (not a csm generate directory)")
            }
            return (dir, resolved)
        }
        let lock = try DirectoryLock(directory: out, command: "csm merge")
        defer { lock.release() }
        let config = manifests[0].1.manifest?.config ?? .null
        for (dir, resolved) in manifests where resolved.manifest?.config != config {
            throw CLIError("\(dir): made with another configuration than \(manifests[0].0); cannot merge")
        }
        let outManifestPath = (out as NSString).appendingPathComponent("manifest.json")
        var merged = Manifest(config: config)
        if FileManager.default.fileExists(atPath: outManifestPath) {
            merged = try Manifest.read(from: outManifestPath)
            guard merged.config == config else { throw CLIError("\(outManifestPath): made with another configuration; cannot merge into it") }
        }
        let present = merged.shards.map(\.shardIndex) + manifests.flatMap { $0.1.manifest?.shards.map(\.shardIndex) ?? [] }
        let missing = Manifest.missing(expected: merged.expectedShardCount, present: present)
        let lacking = merged.expectedShardCount.map { Manifest.describeMissing(missing, of: $0) } ?? ""
        if !missing.isEmpty && !partial {
            throw CLIError("\(out): not merged: the run \(lacking) among the inputs (run the workers that write them, or pass --partial)")
        }
        var copied = 0
        for (dir, resolved) in manifests {
            for member in resolved.members {
                guard let shard = member.entry else { continue }
                if let existing = merged.shards.first(where: { $0.shardIndex == shard.shardIndex }), existing.sha256 != shard.sha256 {
                    throw CLIError("\(dir): shard \(shard.shardIndex) differs from the one already in \(out)")
                }
                let source = member.path
                guard try FileHash.sha256(ofFile: source) == shard.sha256 else {
                    throw CLIError("\(source): SHA-256 does not match its manifest (damaged or changed file)")
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
        printError("merged \(manifests.count) directories into \(out): \(merged.shards.count) shards, \(merged.totalCount) samples (\(copied) files copied)"
                   + (missing.isEmpty ? "" : "; INCOMPLETE (--partial): \(lacking)"))
    }
}

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
        try merge()
    }

    private func merge() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one input directory") }
        let result = try ShardMerge.merge(inputs, into: out, partial: partial)
        printError("merged \(inputs.count) directories into \(out): \(result.shards) shards, \(result.samples) samples (\(result.copied) files copied)"
                   + (result.lacking.map { "; INCOMPLETE (--partial): \($0)" } ?? ""))
    }
}

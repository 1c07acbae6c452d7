import ArgumentParser
import CSMFormats
import CSMLoader
import Foundation

/// `csm split`: holds out a seeded random share of a shard set as shards of its own.
struct SplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: "Hold out a seeded random share of a shard set as its own shards (and the rest as others).",
        discussion: """
            --out gets round(FRACTION · N) of the N samples, drawn by --seed; --rest (optional) \
            the others. Both keep the input's order and every column as it is, so together they \
            are the input. With --balanced the draw is per class (class_a; for mixed shards too, \
            sample by sample, so trajectories are split), spreading the --out total over the \
            classes as evenly as their sizes allow. The selection depends on --seed, --fraction, \
            --balanced and the data only.

            Each side is written as csm-shard/1 shards <kind>-out-NNNNN.h5 / <kind>-rest-NNNNN.h5 \
            (at most --shard-size samples each) with the input's kind, class names, sharpness and \
            generator/annotator metadata, plus a manifest.json whose config records the split: \
            the source path, its shard files with their SHA-256, the source manifest's config, \
            fraction, seed, balanced, side, samples and num_shards. The output folders are \
            locked while csm split writes there.

            Rerunning the same command is a no-op (or, after an interruption, rewrites the same \
            files). A folder holding anything else is refused, as are a fraction outside (0, 1), \
            a side that would be empty, --out equal to --rest, and an output that is the source.

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm split data/real-train --fraction 0.1 --seed 0 --out data/real-val \\
                  --rest data/train90
              csm split data/real-train --fraction 0.1 --balanced --seed 0 --out data/scarce
            """)

    @Argument(help: ArgumentHelp("Shards: a directory with a manifest, a manifest, a directory of .h5 files, or one shard.",
                                 valueName: "data"))
    var data: String

    @Option(help: "Share of the samples that go to --out, strictly between 0 and 1.")
    var fraction: Double

    @Option(help: "Seed of the draw.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Folder for the drawn share.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Folder for the other samples (not written when left out).", valueName: "dir"))
    var rest: String?

    @Flag(help: "Draw per class (class_a), as evenly over the classes as their sizes allow.")
    var balanced = false

    @Option(help: "Samples per shard written.")
    var shardSize = 10_000

    func run() throws {
        guard fraction > 0, fraction < 1 else { throw CLIError("--fraction must lie strictly between 0 and 1, got \(fraction)") }
        guard shardSize > 0 else { throw CLIError("--shard-size must be positive, got \(shardSize)") }
        if let rest, URL(fileURLWithPath: rest).standardizedFileURL.path == URL(fileURLWithPath: out).standardizedFileURL.path {
            throw CLIError("\(rest): --rest is the same folder as --out")
        }
        let outLock = try DirectoryLock(directory: out, command: "csm split")
        defer { outLock.release() }
        let restLock = try rest.map { try DirectoryLock(directory: $0, command: "csm split") }
        defer { restLock?.release() }
        let split = ShardSplit(fraction: fraction, seed: seed, balanced: balanced, shardSize: shardSize,
                               createdBy: "csm \(CSMVersion.string)")
        var progress: ProgressReporter?
        let written = try split.run(source: data, out: out, rest: rest) { done, total in
            if progress == nil { progress = ProgressReporter("writing shards", total: total, unit: "samples") }
            progress?.update(done)
        }
        for side in written {
            print("\(side.directory): \(side.samples) samples in \(side.shards) shard\(side.shards == 1 ? "" : "s")"
                  + (side.alreadyDone ? " (already there, unchanged)" : ""))
        }
    }
}

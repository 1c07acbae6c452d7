import ArgumentParser
import CSMAttribution
import CSMInspect
import CSMPipeline
import Foundation

/// `csm inspect`: what a set of shards holds, whether it is intact, and pictures of it.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Summarise, verify and picture csm-shard/1 shards (a manifest, a directory or one .h5 file).",
        discussion: """
            Without options, prints samples, shards, classes, pairs, the distributions of λ_gen and \
            λ̂ (overall, per λ and per pair), the consistency rate, the entropy of the soft labels \
            and the bytes on disk. Only the per-sample columns are read, not the images.

            --verify checks the manifest (SHA-256, sample counts, shard indices, files it does not \
            list), every shard's schema, every chunk of every dataset through HDF5's Fletcher-32 \
            checksum and the values the schema constrains. Each problem is one line, \
            FILE: 'DATASET': problem; the exit status is 1 when there is any.

            Examples:
              csm generate --out data/mixed
              csm inspect data/mixed
              csm inspect data/mixed/manifest.json --verify
              csm inspect data/mixed --pair Sneaker:"Ankle boot" \\
                  --grid grid.png --plot plot.png
              csm inspect data/mixed/mixed-00000.h5 --json
            """)

    @Argument(help: "A manifest.json, a directory with one (or with .h5 shards), or one shard file.")
    var path: String?
    @Option(help: ArgumentHelp("A csm-attributions/1 file from `csm attribute query`: --grid draws each query (the first --groups) "
                               + "beside its top training images, scores underneath.", valueName: "file.h5"))
    var attributions: String?
    @Flag(help: "Check SHA-256, schema, every chunk (Fletcher-32) and values; exit 1 on any problem.")
    var verify = false
    @Flag(help: "Print the summary (and verification) as JSON.")
    var json = false
    @Option(help: ArgumentHelp("Write a contact sheet of trajectories: rows = groups, columns = λ_gen, captions λ̂.", valueName: "file.png"))
    var grid: String?
    @Option(help: "Groups (rows) on the contact sheet; for real data, classes.")
    var groups = 8
    @Option(help: ArgumentHelp("Only these class pairs on the pictures: A:B,C:D,… (indices or names).", valueName: "pairs"))
    var pair: String?
    @Option(help: ArgumentHelp("Write a plot of λ̂ against λ_gen, one colour per pair (at most \(InspectPictures.maximumPlotPairs) pairs).",
                               valueName: "file.png"))
    var plot: String?

    func validate() throws {
        guard groups >= 1 else { throw ValidationError("--groups must be at least 1") }
        guard (path == nil) != (attributions == nil) else { throw ValidationError("give either a shard set or --attributions") }
        guard attributions == nil || (grid != nil && plot == nil && !verify && !json) else {
            throw ValidationError("--attributions draws --grid only")
        }
        for file in [grid, plot].compactMap({ $0 }) where !file.lowercased().hasSuffix(".png") {
            throw ValidationError("\(file): pictures are written as PNG; give a .png file name")
        }
    }

    func run() throws {
        if let attributions, let grid {
            let (sheet, rows, columns) = try Attributions.sheet(attributions, queries: groups)
            try sheet.writePNG(path: grid)
            print("wrote \(grid): \(rows) queries × top \(columns) training images")
            return
        }
        try inspect()
    }

    private func inspect() throws {
        guard let path else { return }
        let collection = try ShardCollection(path: path)
        var report: VerificationReport?
        if verify {
            let progress = collection.members.count >= 16 ? ProgressReporter("verifying", total: collection.members.count, unit: "shards") : nil
            report = collection.verify { progress?.update($0) }
        }
        let clean = report?.isClean ?? true
        // A damaged set is not summarised or pictured: its columns cannot all be read.
        let summary = clean ? try DatasetSummary(collection: collection) : nil

        if json {
            print(try InspectJSON(summary: summary, verification: report).render())
        } else {
            if let report { print(report.text(path: path, againstManifest: collection.members.contains { $0.entry != nil })) }
            if let summary { print(InspectText(summary: summary).render()) }
        }
        guard clean else {
            fflush(stdout)
            let count = report?.problems.count ?? 0
            printError("csm inspect: \(count) problem\(count == 1 ? "" : "s") in \(path)")
            throw ExitCode.failure
        }
        guard let summary, grid != nil || plot != nil else { return }
        let pairs = try pair.map {
            PairFilter(try ClassPair.parse($0, classNames: summary.classNames, classCount: summary.classNames.count).map { ($0.a, $0.b) },
                       text: $0)
        }
        if let grid { try write(try collection.contactSheet(summary: summary, groups: groups, pairs: pairs), to: grid) }
        if let plot { try write(try collection.projectionPlot(summary: summary, pairs: pairs), to: plot) }
    }

    private func write(_ picture: InspectPicture, to file: String) throws {
        try picture.image.writePNG(path: file)
        printError("wrote \(file): \(picture.summary)")
    }
}

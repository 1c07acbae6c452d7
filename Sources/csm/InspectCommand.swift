import ArgumentParser
import CSMAttribution
import CSMFormats
import CSMInspect
import CSMPictures
import CSMPipeline
import CSMShards
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
    @Option(help: ArgumentHelp("Write a plot of λ̂ against λ_gen, one colour per pair (at most \(Self.maximumPlotPairs) pairs).", valueName: "file.png"))
    var plot: String?

    /// Pairs drawn on one plot at most (one colour each).
    static let maximumPlotPairs = 10
    /// λ columns on the contact sheet at most; longer trajectories are shown evenly spaced.
    static let maximumGridColumns = 16

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
            try ClassPair.parse($0, classNames: summary.classNames, classCount: summary.classNames.count).map { ($0.a, $0.b) }
        }
        if let grid { try writeGrid(grid, collection: collection, summary: summary, pairs: pairs) }
        if let plot { try writePlot(plot, collection: collection, summary: summary, pairs: pairs) }
    }

    // MARK: Pictures

    /// How pictures write λ̂: the font's glyph when it has one.
    static let lambdaHat = BitmapFont.contains("λ̂") ? "λ̂" : "λ^"
    private static let inconsistentColor = Color(hex: 0xd62728)

    private func writeGrid(_ file: String, collection: ShardCollection, summary: DatasetSummary, pairs: [(Int, Int)]?) throws {
        let names = summary.classNames
        func name(_ k: Int) -> String { k >= 0 && k < names.count ? names[k] : "\(k)" }
        let trajectories = try collection.trajectories(limit: groups, pairs: pairs)
        if trajectories.isEmpty {
            guard pairs == nil, summary.realSamples > 0 else {
                throw CLIError("\(path ?? ""): no trajectories\(pairs == nil ? "" : " of the pairs \(pair ?? "")") to draw")
            }
            try writeRealGrid(file, collection: collection, names: names)
            return
        }
        let longest = trajectories.map(\.images.count).max() ?? 1
        let columns = min(longest, Self.maximumGridColumns)
        let reference = trajectories.first { $0.images.count == longest } ?? trajectories[0]
        /// Sample of trajectory `t` in `column`: all of them, or evenly spread when too many.
        func sample(_ t: Trajectory, _ column: Int) -> Int? {
            guard t.images.count > columns else { return column < t.images.count ? column : nil }
            return Int((Double(column) * Double(t.images.count - 1) / Double(columns - 1)).rounded())
        }
        var images: [RasterImage] = [], captions: [String] = []
        var marked = 0
        for trajectory in trajectories {
            for column in 0..<columns {
                guard let index = sample(trajectory, column) else {
                    images.append(try blank(trajectory))
                    captions.append("")
                    continue
                }
                let consistent = trajectory.consistent[index]
                marked += consistent ? 0 : 1
                images.append(try picture(trajectory.images[index], trajectory, framed: !consistent))
                let value = trajectory.lambdaProj[index]
                captions.append("\(Self.lambdaHat)=" + (value.isFinite ? String(format: "%.2f", value) : "n/a"))
            }
        }
        let sheet = ContactSheet(
            images: images, columns: columns,
            title: "\(Self.lambdaHat) along trajectories (red frame: inconsistent)",
            columnLabels: (0..<columns).map { sample(reference, $0).map { String(format: "λ=%.2f", reference.lambdaGen[$0]) } ?? "" },
            rowLabels: trajectories.map { "group \($0.group): \(name($0.classA)) <- \(name($0.classB))" },
            captions: captions, scale: 2)
        try sheet.writePNG(path: file)
        printError("wrote \(file): \(trajectories.count) groups × \(columns) λ, \(marked) inconsistent samples marked")
    }

    /// Real data: the first samples of each class, a row per class.
    private func writeRealGrid(_ file: String, collection: ShardCollection, names: [String]) throws {
        let perClass = 8
        let examples = try collection.examples(perClass: perClass, classLimit: groups)
        guard !examples.isEmpty else { throw CLIError("\(path ?? ""): no samples to draw") }
        var images: [RasterImage] = []
        for row in examples {
            for column in 0..<perClass {
                images.append(column < row.images.count
                              ? try RasterImage(width: row.width, height: row.height, channels: row.channels, pixels: row.images[column])
                              : try RasterImage(width: row.width, height: row.height, channels: 1,
                                                pixels: [UInt8](repeating: 255, count: row.width * row.height)))
            }
        }
        let sheet = ContactSheet(images: images, columns: perClass, title: "real samples by class",
                                 rowLabels: examples.map { $0.classIndex < names.count ? names[$0.classIndex] : "class \($0.classIndex)" },
                                 scale: 2)
        try sheet.writePNG(path: file)
        printError("wrote \(file): \(examples.count) classes × up to \(perClass) samples")
    }

    /// A sample's image, with a red frame when `framed`.
    private func picture(_ pixels: [UInt8], _ t: Trajectory, framed: Bool) throws -> RasterImage {
        let image = try RasterImage(width: t.width, height: t.height, channels: t.channels, pixels: pixels)
        guard framed else { return image }
        var canvas = Canvas(width: t.width, height: t.height)
        canvas.drawImage(image, x: 0, y: 0)
        canvas.strokeRect(x: 0, y: 0, width: t.width, height: t.height, color: Self.inconsistentColor)
        return canvas.image()
    }

    private func blank(_ t: Trajectory) throws -> RasterImage {
        try RasterImage(width: t.width, height: t.height, channels: 1, pixels: [UInt8](repeating: 255, count: t.width * t.height))
    }

    private func writePlot(_ file: String, collection: ShardCollection, summary: DatasetSummary, pairs: [(Int, Int)]?) throws {
        let names = summary.classNames
        func name(_ k: Int) -> String { k >= 0 && k < names.count ? names[k] : "\(k)" }
        let all = try collection.projections(pairs: pairs)
        guard !all.isEmpty else {
            throw CLIError("\(path ?? ""): no mixed samples with a λ̂\(pairs == nil ? "" : " of the pairs \(pair ?? "")") to plot")
        }
        let drawn = Array(all.prefix(Self.maximumPlotPairs))
        let data = ProjectionPlotData(drawn)
        func scatter(_ points: [ProjectionPlotData.Point]) -> [ScatterPlot.Point] { points.map { ScatterPlot.Point(x: $0.x, y: $0.y) } }
        let series = drawn.enumerated().map { index, projections in
            ScatterPlot.Series(name: "\(name(projections.classA)) / \(name(projections.classB))",
                               color: ScatterPlot.palette[index % ScatterPlot.palette.count],
                               points: scatter(data.points(index)), line: scatter(data.means(index)))
        }
        let samples = drawn.reduce(0) { $0 + $1.lambdaGen.count }
        // Few points: large and opaque; many: small and faint, so that dense clouds stay readable.
        let perPair = Double(samples) / Double(drawn.count)
        let pairsText = all.count > drawn.count ? "\(drawn.count) of \(all.count) pairs" : "\(drawn.count) pair\(drawn.count == 1 ? "" : "s")"
        let plot = ScatterPlot(
            title: "λ̂ against λ_gen",
            subtitle: "\(samples) samples of \(pairsText); lines: mean λ̂ per λ_gen",
            xLabel: "λ_gen (share of the first class)", yLabel: "λ̂ (projection between prototypes)",
            xRange: -0.06...1.06, yRange: data.yRange, series: series,
            diagonal: true, diagonalLabel: "λ̂ = λ_gen", band: 0...1, bandLabel: "λ̂ in [0, 1]",
            pointRadius: perPair <= 200 ? 3.2 : 2.4, pointAlpha: UInt8(min(190, max(45, 1200 / perPair.squareRoot()))))
        try plot.writePNG(path: file)
        printError("wrote \(file): \(samples) samples of \(pairsText)" + (all.count > drawn.count ? " (choose others with --pair)" : ""))
    }
}

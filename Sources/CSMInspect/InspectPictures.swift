import CSMFormats
import CSMPictures
import Foundation

/// A picture `csm inspect` draws, and the line that says what it shows.
public struct InspectPicture: Sendable {
    /// The picture, ready to be written as a PNG.
    public let image: RasterImage
    /// What the picture shows, one line, e.g. "8 groups × 8 λ, 3 inconsistent samples
    /// marked" (`csm inspect` prints it after "wrote FILE: ").
    public let summary: String
}

/// The class pairs a picture is limited to: their class indices (a pair matches in either
/// order) and the text they were given as, which the error messages quote.
public struct PairFilter: Sendable {
    /// The pairs, as (class a, class b) indices.
    public let pairs: [(Int, Int)]
    /// How the pairs were written, e.g. "Sneaker:Ankle boot".
    public let text: String

    /// Pictures of `pairs` only, given as `text`.
    public init(_ pairs: [(Int, Int)], text: String) {
        self.pairs = pairs
        self.text = text
    }
}

/// The pictures of `csm inspect`: a contact sheet of trajectories (rows = groups, columns =
/// λ_gen, captions λ̂, inconsistent samples framed red), or of real samples by class, and a
/// plot of λ̂ against λ_gen with one colour per pair.
public enum InspectPictures {
    /// λ columns on the contact sheet at most; longer trajectories are shown evenly spaced.
    public static let maximumGridColumns = 16
    /// Pairs drawn on one plot at most (one colour each).
    public static let maximumPlotPairs = 10
    /// Samples per class on the contact sheet of real data.
    public static let examplesPerClass = 8
    /// How pictures write λ̂: the font's glyph when it has one.
    public static let lambdaHat: String = BitmapFont.contains("λ̂") ? "λ̂" : "λ^"
    /// The frame around an inconsistent sample.
    static let inconsistentColor = Color(hex: 0xd62728)

    /// The contact sheet of `trajectories` (not empty): a row per group, labelled with its
    /// pair (`classNames`, or the index past them), a column per λ_gen (at most
    /// `maximumGridColumns`, evenly spread over longer trajectories), each sample captioned
    /// with its λ̂ and framed red when inconsistent.
    public static func trajectorySheet(_ trajectories: [Trajectory], classNames: [String]) throws -> InspectPicture {
        guard !trajectories.isEmpty else { throw PictureError.invalidImage("no trajectories to draw") }
        let longest = trajectories.map(\.images.count).max() ?? 1
        let columns = min(longest, maximumGridColumns)
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
                    images.append(try blank(width: trajectory.width, height: trajectory.height))
                    captions.append("")
                    continue
                }
                let consistent = trajectory.consistent[index]
                marked += consistent ? 0 : 1
                images.append(try picture(trajectory.images[index], trajectory, framed: !consistent))
                let value = trajectory.lambdaProj[index]
                captions.append("\(lambdaHat)=" + (value.isFinite ? String(format: "%.2f", value) : "n/a"))
            }
        }
        let sheet = ContactSheet(
            images: images, columns: columns,
            title: "\(lambdaHat) along trajectories (red frame: inconsistent)",
            columnLabels: (0..<columns).map { sample(reference, $0).map { String(format: "λ=%.2f", reference.lambdaGen[$0]) } ?? "" },
            rowLabels: trajectories.map { "group \($0.group): \(name($0.classA, classNames)) <- \(name($0.classB, classNames))" },
            captions: captions, scale: 2)
        return InspectPicture(image: sheet.render().image(),
                              summary: "\(trajectories.count) groups × \(columns) λ, \(marked) inconsistent samples marked")
    }

    /// The contact sheet of real data (`examples` not empty): a row per class, labelled with
    /// its name, its first `examplesPerClass` samples (blank cells where it has fewer).
    public static func exampleSheet(_ examples: [ClassExamples], classNames: [String]) throws -> InspectPicture {
        guard !examples.isEmpty else { throw PictureError.invalidImage("no samples to draw") }
        var images: [RasterImage] = []
        for row in examples {
            for column in 0..<examplesPerClass {
                images.append(column < row.images.count
                              ? try RasterImage(width: row.width, height: row.height, channels: row.channels, pixels: row.images[column])
                              : try blank(width: row.width, height: row.height))
            }
        }
        let rowLabels = examples.map { $0.classIndex < classNames.count ? classNames[$0.classIndex] : "class \($0.classIndex)" }
        let sheet = ContactSheet(images: images, columns: examplesPerClass, title: "real samples by class", rowLabels: rowLabels, scale: 2)
        return InspectPicture(image: sheet.render().image(), summary: "\(examples.count) classes × up to \(examplesPerClass) samples")
    }

    /// The plot of λ̂ against λ_gen of the first `maximumPlotPairs` of `projections` (not
    /// empty), one colour per pair, the mean λ̂ per λ_gen as a line; the summary says when
    /// pairs were left out. Few points are drawn large and opaque, many small and faint.
    public static func projectionPlot(_ projections: [PairProjections], classNames: [String]) throws -> InspectPicture {
        guard !projections.isEmpty else { throw PictureError.invalidImage("no pairs to plot") }
        let drawn = Array(projections.prefix(maximumPlotPairs))
        let data = ProjectionPlotData(drawn)
        func scatter(_ points: [ProjectionPlotData.Point]) -> [ScatterPlot.Point] { points.map { ScatterPlot.Point(x: $0.x, y: $0.y) } }
        let series = drawn.enumerated().map { index, pair in
            ScatterPlot.Series(name: "\(name(pair.classA, classNames)) / \(name(pair.classB, classNames))",
                               color: ScatterPlot.palette[index % ScatterPlot.palette.count],
                               points: scatter(data.points(index)), line: scatter(data.means(index)))
        }
        let samples = drawn.reduce(0) { $0 + $1.lambdaGen.count }
        // Few points: large and opaque; many: small and faint, so that dense clouds stay readable.
        let perPair = Double(samples) / Double(drawn.count)
        let pairsText = projections.count > drawn.count
            ? "\(drawn.count) of \(projections.count) pairs" : "\(drawn.count) pair\(drawn.count == 1 ? "" : "s")"
        let plot = ScatterPlot(
            title: "λ̂ against λ_gen",
            subtitle: "\(samples) samples of \(pairsText); lines: mean λ̂ per λ_gen",
            xLabel: "λ_gen (share of the first class)", yLabel: "λ̂ (projection between prototypes)",
            xRange: -0.06...1.06, yRange: data.yRange, series: series,
            diagonal: true, diagonalLabel: "λ̂ = λ_gen", band: 0...1, bandLabel: "λ̂ in [0, 1]",
            pointRadius: perPair <= 200 ? 3.2 : 2.4, pointAlpha: UInt8(min(190, max(45, 1200 / perPair.squareRoot()))))
        return InspectPicture(image: plot.render().image(),
                              summary: "\(samples) samples of \(pairsText)"
                                  + (projections.count > drawn.count ? " (choose others with --pair)" : ""))
    }

    /// Class `k`'s name, or its index when `names` has none for it.
    private static func name(_ k: Int, _ names: [String]) -> String { k >= 0 && k < names.count ? names[k] : "\(k)" }

    /// A sample's image, with a red frame when `framed`.
    private static func picture(_ pixels: [UInt8], _ t: Trajectory, framed: Bool) throws -> RasterImage {
        let image = try RasterImage(width: t.width, height: t.height, channels: t.channels, pixels: pixels)
        guard framed else { return image }
        var canvas = Canvas(width: t.width, height: t.height)
        canvas.drawImage(image, x: 0, y: 0)
        canvas.strokeRect(x: 0, y: 0, width: t.width, height: t.height, color: inconsistentColor)
        return canvas.image()
    }

    /// A white cell.
    private static func blank(width: Int, height: Int) throws -> RasterImage {
        try RasterImage(width: width, height: height, channels: 1, pixels: [UInt8](repeating: 255, count: width * height))
    }
}

extension ShardCollection {
    /// The contact sheet `csm inspect --grid` draws: the first `groups` trajectories (of
    /// `pairs` only, when given) by `InspectPictures.trajectorySheet`, or, for a set without
    /// mixed samples but with real ones (`summary`), the first samples of its first `groups`
    /// classes by `InspectPictures.exampleSheet`. Throws a `FileError` naming the set when
    /// there is nothing to draw.
    public func contactSheet(summary: DatasetSummary, groups: Int, pairs: PairFilter? = nil) throws -> InspectPicture {
        let trajectories = try self.trajectories(limit: groups, pairs: pairs?.pairs)
        guard trajectories.isEmpty else { return try InspectPictures.trajectorySheet(trajectories, classNames: summary.classNames) }
        guard pairs == nil, summary.realSamples > 0 else {
            throw FileError(path, "no trajectories\(pairs.map { " of the pairs \($0.text)" } ?? "") to draw")
        }
        let examples = try self.examples(perClass: InspectPictures.examplesPerClass, classLimit: groups)
        guard !examples.isEmpty else { throw FileError(path, "no samples to draw") }
        return try InspectPictures.exampleSheet(examples, classNames: summary.classNames)
    }

    /// The plot `csm inspect --plot` draws of every mixed sample with a λ̂ (of `pairs` only,
    /// when given), by `InspectPictures.projectionPlot`. Throws a `FileError` naming the set
    /// when it has no such sample.
    public func projectionPlot(summary: DatasetSummary, pairs: PairFilter? = nil) throws -> InspectPicture {
        let projections = try self.projections(pairs: pairs?.pairs)
        guard !projections.isEmpty else {
            throw FileError(path, "no mixed samples with a λ̂\(pairs.map { " of the pairs \($0.text)" } ?? "") to plot")
        }
        return try InspectPictures.projectionPlot(projections, classNames: summary.classNames)
    }
}

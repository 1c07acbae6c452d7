import CSMFormats
import CSMInspect
import CSMPictures
import CSMShards
import Foundation
import XCTest

/// The pictures of `csm inspect`, drawn from the small run of `InspectFixture` (images 5 wide,
/// 6 high) and from hand-made shards; sizes follow `ContactSheet`'s layout, drawn twice the size.
final class InspectPicturesTests: XCTestCase {
    /// The colour of `image` at (x, y), as [r, g, b].
    func rgb(_ image: RasterImage, _ x: Int, _ y: Int) -> [UInt8] {
        let color = image.color(x: x, y: y)
        return [color.r, color.g, color.b]
    }

    func testTrajectorySheetLayoutCaptionsAndRedFrames() throws {
        let directory = try temporaryDirectory(self)
        try InspectFixture.write(to: directory)
        let collection = try ShardCollection(path: directory)
        let summary = try DatasetSummary(collection: collection)

        let picture = try collection.contactSheet(summary: summary, groups: 3)
        // Group 2 (offset +0.3) has λ̂ = 1.3 at λ_gen = 1: the one inconsistent sample.
        XCTAssertEqual(picture.summary, "3 groups × 3 λ, 1 inconsistent samples marked")
        // Row labels "group 0: A <- B" (15 characters, 89 pixels) + 2·4 → cells from x = 97;
        // title 26 + column labels 11 + 2·4 → cells from y = 45; a cell is 10 × 12 plus a gap
        // of 4, and 13 below it for the caption.
        let left = 97, top = 45, cellWidth = 10 + 4, cellHeight = 12 + 13 + 4
        XCTAssertEqual(picture.image.width, left + 3 * cellWidth + 4)
        XCTAssertEqual(picture.image.height, top + 3 * cellHeight + 4)
        XCTAssertEqual(picture.image.channels, 3)
        // Group 0 at λ = 0.5: pixel (1, 1) of its image is (0·50 + 1·15 + 6·3) = 33.
        XCTAssertEqual(rgb(picture.image, left + cellWidth + 2, top + 2), [33, 33, 33])
        // Group 2 at λ = 1: framed red, its pixel (1, 1) is (2·50 + 2·15 + 6·3) = 148.
        XCTAssertEqual(rgb(picture.image, left + 2 * cellWidth, top + 2 * cellHeight), [0xd6, 0x27, 0x28])
        XCTAssertEqual(rgb(picture.image, left + 2 * cellWidth + 2, top + 2 * cellHeight + 2), [148, 148, 148])
        // Its consistent neighbour at λ = 0.5 is not framed: pixel (0, 0) is 100 + 15 = 115.
        XCTAssertEqual(rgb(picture.image, left + cellWidth, top + 2 * cellHeight), [115, 115, 115])

        let all = try collection.contactSheet(summary: summary, groups: 8)
        XCTAssertEqual(all.summary, "4 groups × 3 λ, 2 inconsistent samples marked")
        XCTAssertEqual(all.image.height, top + 4 * cellHeight + 4)

        let filtered = try collection.contactSheet(summary: summary, groups: 8, pairs: PairFilter([(3, 2)], text: "D:C"))
        XCTAssertEqual(filtered.summary, "2 groups × 3 λ, 2 inconsistent samples marked")
    }

    /// A trajectory of 20 samples is shown in 16 columns, sample round(c · 19 / 15) in column c.
    func testLongTrajectoriesAreSpreadOverSixteenColumns() throws {
        let directory = try temporaryDirectory(self)
        let length = 20, (height, width) = (6, 5)
        var s = ShardSamples(height: height, width: width, channels: 1, numClasses: 4, images: [], labels: [], classA: [], classB: [],
                             lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
        for i in 0..<length {
            let lambda = Float(i) / Float(length - 1)
            s.images += [UInt8](repeating: UInt8(10 * i), count: height * width)
            s.labels += [lambda, 1 - lambda, 0, 0]
            s.classA.append(0)
            s.classB.append(1)
            s.lambdaGen.append(lambda)
            s.lambdaProj.append(lambda)
            s.probA.append(lambda)
            s.probB.append(1 - lambda)
            s.consistent.append(1)
            s.group.append(0)
            s.seed.append(7)
        }
        try ShardWriter().write(s, metadata: InspectFixture.metadata(shard: 0), to: directory + "/long.h5")
        let collection = try ShardCollection(path: directory + "/long.h5")
        let picture = try collection.contactSheet(summary: try DatasetSummary(collection: collection), groups: 8)
        XCTAssertEqual(picture.summary, "1 groups × 16 λ, 0 inconsistent samples marked")
        let left = 97, top = 45, cellWidth = 14
        XCTAssertEqual(picture.image.width, left + 16 * cellWidth + 4)
        let shown = (0..<16).map { Int(picture.image.color(x: left + $0 * cellWidth + 1, y: top + 1).r) / 10 }
        XCTAssertEqual(shown, [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19])
    }

    func testRealDataSheetAndItsErrors() throws {
        let path = try InspectFixture.writeReal(to: try temporaryDirectory(self))
        let collection = try ShardCollection(path: path)
        let summary = try DatasetSummary(collection: collection)

        let picture = try collection.contactSheet(summary: summary, groups: 8)
        XCTAssertEqual(picture.summary, "3 classes × up to 8 samples")
        // Row labels "A", "B", "D" (5 pixels) + 2·4; title 26 + 4; 8 cells of 10 × 12 + 4.
        let left = 13, top = 30
        XCTAssertEqual([picture.image.width, picture.image.height], [left + 8 * 14 + 4, top + 3 * 16 + 4])
        // Class B's one sample is sample 2 (group 0 at λ = 1: its pixel (0, 0) is 30); a blank beside it.
        XCTAssertEqual(rgb(picture.image, left, top + 16), [30, 30, 30])
        XCTAssertEqual(rgb(picture.image, left + 14, top + 16), [255, 255, 255])

        XCTAssertThrowsError(try collection.contactSheet(summary: summary, groups: 8, pairs: PairFilter([(0, 1)], text: "A:B"))) {
            XCTAssertEqual("\($0)", "\(path): no trajectories of the pairs A:B to draw")
        }
        XCTAssertThrowsError(try collection.projectionPlot(summary: summary)) {
            XCTAssertEqual($0 as? FileError, FileError(path, "no mixed samples with a λ̂ to plot"))
        }
    }

    func testPlotOfTheFixtureAndItsFile() throws {
        let directory = try temporaryDirectory(self)
        try InspectFixture.write(to: directory)
        let collection = try ShardCollection(path: directory)
        let summary = try DatasetSummary(collection: collection)

        let plot = try collection.projectionPlot(summary: summary)
        XCTAssertEqual(plot.summary, "12 samples of 2 pairs")
        let colors = Set((0..<plot.image.height).flatMap { y in (0..<plot.image.width).map { plot.image.color(x: $0, y: y) } })
        XCTAssertTrue(colors.contains(ScatterPlot.palette[0]) && colors.contains(ScatterPlot.palette[1]), "a colour per pair")
        XCTAssertFalse(colors.contains(ScatterPlot.palette[2]), "two pairs, two colours")
        XCTAssertEqual(try collection.projectionPlot(summary: summary, pairs: PairFilter([(1, 0)], text: "B:A")).summary, "6 samples of 1 pair")
        XCTAssertThrowsError(try collection.projectionPlot(summary: summary, pairs: PairFilter([(0, 2)], text: "A:C"))) {
            XCTAssertEqual("\($0)", "\(directory): no mixed samples with a λ̂ of the pairs A:C to plot")
        }

        // The PNG: its header holds the picture's size.
        let file = directory + "/plot.png"
        try plot.image.writePNG(path: file)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        func bigEndian(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        XCTAssertEqual([bigEndian(16), bigEndian(20)], [plot.image.width, plot.image.height])
    }

    /// More than ten pairs: the first ten are drawn, and the summary says how many there were.
    func testPlotDrawsAtMostTenPairs() throws {
        let pairs = (0..<11).map {
            PairProjections(classA: $0, classB: $0 + 1, lambdaGen: [0, 1], lambdaProj: [0.1, 0.9], consistent: [true, true])
        }
        let plot = try InspectPictures.projectionPlot(pairs, classNames: [])
        XCTAssertEqual(plot.summary, "20 samples of 10 of 11 pairs (choose others with --pair)")
        XCTAssertEqual(try InspectPictures.projectionPlot(Array(pairs.prefix(10)), classNames: []).summary, "20 samples of 10 pairs")
        XCTAssertThrowsError(try InspectPictures.projectionPlot([], classNames: []))
        XCTAssertThrowsError(try InspectPictures.trajectorySheet([], classNames: []))
        XCTAssertThrowsError(try InspectPictures.exampleSheet([], classNames: []))
    }
}

import CSMInspect
import XCTest

/// What `csm inspect --plot` draws, checked by hand on small pairs.
final class ProjectionPlotDataTests: XCTestCase {
    func pair(_ a: Int, _ b: Int, gen: [Float], proj: [Float]) -> PairProjections {
        PairProjections(classA: a, classB: b, lambdaGen: gen, lambdaProj: proj, consistent: gen.map { _ in true })
    }

    func testMeansPerLevelJitterAndRange() {
        let data = ProjectionPlotData([pair(7, 9, gen: [0, 0, 0.5, 0.5, 1], proj: [0.1, -0.1, 0.4, 0.8, 1.6])])
        // λ levels 0.5 apart: jitter 0.3 · 0.5 = 0.15, capped at 0.05.
        XCTAssertEqual(data.jitter, 0.05)
        XCTAssertEqual(data.means(0).map(\.x), [0, 0.5, 1])
        XCTAssertEqual(data.means(0).map(\.y), [0, 0.6000000089406967, 1.600000023841858], accuracy: 1e-12)
        let points = data.points(0)
        XCTAssertEqual(points.map(\.y), [0.1, -0.1, 0.4, 0.8, 1.6].map { Double(Float($0)) })
        for (point, gen) in zip(points, [0.0, 0, 0.5, 0.5, 1]) { XCTAssertLessThanOrEqual(abs(point.x - gen), 0.05) }
        XCTAssertEqual(points, ProjectionPlotData(data.pairs).points(0), "the same data give the same picture")
        // From [−0.25, 1.25] out to the data (1.6 + 0.05 → 1.75), in steps of 0.25.
        XCTAssertEqual(data.yRange, -0.25...1.75)
    }

    func testDensePairsAreThinnedAndRangesCapped() {
        let count = 4500
        let gen = (0..<count).map { Float($0 % 8) / 7 }
        let data = ProjectionPlotData([pair(0, 1, gen: gen, proj: gen.map { $0 * 9 - 4 })], maximumPoints: 2000)
        XCTAssertEqual(data.points(0).count, 1500, "every third sample of 4,500")
        XCTAssertEqual(data.jitter, 0.3 / 7, accuracy: 1e-6)
        XCTAssertEqual(data.yRange, -1.5...2.5)
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}

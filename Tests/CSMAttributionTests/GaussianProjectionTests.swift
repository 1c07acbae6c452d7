import CSMAttribution
import CSMDiffusion
import Foundation
import XCTest

/// The projection P·v against a slow product with P's entries, and the noise streams.
final class GaussianProjectionTests: XCTestCase {
    func testProjectionEqualsExplicitProduct() {
        let (k, d, n) = (37, 9000, 3)
        let projection = GaussianProjection(dimension: k, inputDimension: d, seed: 7)
        let rows = GaussianStream(seed: 1).values(n * d)
        let got = projection.project(rows, count: n)
        for r in 0..<k {
            let p = projection.entries(row: r, columns: 0..<d)
            for i in 0..<n {
                var expected = 0.0
                for j in 0..<d { expected += Double(p[j]) * Double(rows[i * d + j]) }
                XCTAssertEqual(Double(got[i * k + r]), expected, accuracy: 1e-3 * (1 + abs(expected)), "row \(r), image \(i)")
            }
        }
        // Entries have variance 1/k.
        let all = (0..<k).flatMap { projection.entries(row: $0, columns: 0..<d) }
        let variance = all.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(all.count)
        XCTAssertEqual(variance * Double(k), 1, accuracy: 0.02)
    }

    func testEntriesDoNotDependOnTheRangeAsked() {
        let projection = GaussianProjection(dimension: 16, inputDimension: 200, seed: 5)
        let row = projection.entries(row: 3, columns: 0..<200)
        for start in [1, 2, 3, 4, 5, 50, 99] {
            XCTAssertEqual(projection.entries(row: 3, columns: start..<150), Array(row[start..<150]), "start \(start)")
        }
        XCTAssertNotEqual(row, projection.entries(row: 4, columns: 0..<200))
    }

    /// Every entry is Box–Muller of its Philox block's words (computed here in float64),
    /// for rows past 2³² too.
    func testEntriesArePhiloxBoxMuller() {
        let k = 9, seed: UInt64 = 0xDEAD_BEEF_1234
        let projection = GaussianProjection(dimension: k, inputDimension: 1, seed: seed)
        let generator = Philox4x32(seed: seed)
        var worst = 0.0
        for row in [0, 1, 5, 1 << 33] {
            let got = projection.entries(row: row, columns: 0..<4000)
            for block in 0..<1000 {
                let (a, b, c, d) = generator.block(UInt64(block), UInt64(row))
                for (pair, (u, v)) in [(a, b), (c, d)].enumerated() {
                    let u1 = Double((u >> 8) + 1) / 16_777_216, angle = 2 * Double.pi * Double(v >> 8) / 16_777_216
                    let radius = (-2 * Foundation.log(u1)).squareRoot()
                    for (offset, expected) in [radius * Foundation.cos(angle), radius * Foundation.sin(angle)].enumerated() {
                        let value = Double(got[4 * block + 2 * pair + offset]) * Double(k).squareRoot()
                        worst = max(worst, abs(value - expected))
                    }
                }
            }
        }
        XCTAssertLessThan(worst, 2e-5)
    }

    func testNoiseDependsOnRoleIndexAndLevel() {
        let noise = AttributionNoise(seed: 3)
        let a = noise.noise(.training, index: 4, level: 2, count: 10)
        XCTAssertEqual(a, noise.noise(.training, index: 4, level: 2, count: 10))
        XCTAssertNotEqual(a, noise.noise(.query, index: 4, level: 2, count: 10))
        XCTAssertNotEqual(a, noise.noise(.training, index: 5, level: 2, count: 10))
        XCTAssertNotEqual(a, noise.noise(.training, index: 4, level: 3, count: 10))
    }

    func testNoiseLevelsFollowTheSamplerSchedule() {
        let levels = AttributionSettings.noiseLevels(10)
        XCTAssertEqual(levels.first!, 80, accuracy: 1e-9)
        XCTAssertEqual(levels.last!, 0.002, accuracy: 1e-12)
        XCTAssertEqual(levels, levels.sorted(by: >))
    }
}

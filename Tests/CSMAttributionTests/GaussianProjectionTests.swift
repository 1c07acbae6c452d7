import CGaussianKernels
import CSMAttribution
import CSMDiffusion
import CSMRandom
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

    /// The fast path (AVX-512 where the CPU has it) equals the portable reference bit for bit,
    /// for full rows, rows past 2³², any start and count, and block counters crossing 2³².
    func testFastPathEqualsReferenceBitwise() {
        func bits(_ seed: UInt64, _ row: UInt64, _ start: UInt64, _ count: Int, reference: Bool) -> [UInt32] {
            var out = [Float](repeating: .nan, count: count)
            out.withUnsafeMutableBufferPointer { buffer in
                if reference {
                    csm_gaussian_fill_reference(seed, row, start, count, 0.25, buffer.baseAddress!)
                } else {
                    csm_gaussian_fill(seed, row, start, count, 0.25, buffer.baseAddress!)
                }
            }
            return out.map(\.bitPattern)
        }
        for row: UInt64 in Array(0..<24) + [1 << 32 - 1, 1 << 33 + 5, .max] {
            XCTAssertEqual(bits(99, row, 0, 20_000, reference: false), bits(99, row, 0, 20_000, reference: true), "row \(row)")
        }
        let full = bits(3, 7, 0, 400, reference: true)
        for start in 0..<70 {
            for count in [1, 2, 3, 5, 17, 63, 64, 65, 129, 330 - start] {
                XCTAssertEqual(bits(3, 7, UInt64(start), count, reference: false), Array(full[start..<(start + count)]), "start \(start), count \(count)")
            }
        }
        let crossing = 4 * (UInt64(1) << 32 - 9) + 1
        XCTAssertEqual(bits(0xFEED, 2, crossing, 300, reference: false), bits(0xFEED, 2, crossing, 300, reference: true))
    }

    /// Entries are the transform of `Philox4x32`'s words, exactly, also where the block counter
    /// passes 2³².
    func testEntriesAreTheTransformOfPhiloxWords() {
        let k = 4, seed: UInt64 = 0x1234_5678_9ABC
        let projection = GaussianProjection(dimension: k, inputDimension: 1, seed: seed)
        let generator = Philox4x32(seed: seed)
        for (row, firstBlock) in [(0, 0), (3, 1 << 32 - 5), (1 << 40, 77)] {
            let got = projection.entries(row: row, columns: (4 * firstBlock)..<(4 * firstBlock + 40))
            var u: [UInt32] = [], v: [UInt32] = []
            for block in firstBlock..<(firstBlock + 10) {
                let (a, b, c, d) = generator.block(UInt64(block), UInt64(row))
                u += [a, c]
                v += [b, d]
            }
            var cosines = [Float](repeating: 0, count: 20), sines = [Float](repeating: 0, count: 20)
            csm_gaussian_box_muller(u, v, 20, 1, &cosines, &sines)
            let expected = (0..<20).flatMap { [cosines[$0] * 0.5, sines[$0] * 0.5] }
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "row \(row)")
        }
    }

    /// Both paths of the transform agree bit for bit on every u1 (all 2²⁴ values, the extremes
    /// 2⁻²⁴ and 1 included), each paired with a different angle.
    func testBoxMullerPathsAgreeOnEveryInput() {
        let count = 1 << 24
        let u = (0..<count).map { UInt32($0) << 8 | 0xA5 }
        let v = (0..<count).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        var fast = ([Float](repeating: 0, count: count), [Float](repeating: 0, count: count))
        var reference = fast
        csm_gaussian_box_muller(u, v, count, 0, &fast.0, &fast.1)
        csm_gaussian_box_muller(u, v, count, 1, &reference.0, &reference.1)
        XCTAssertTrue(fast.0.map(\.bitPattern) == reference.0.map(\.bitPattern))
        XCTAssertTrue(fast.1.map(\.bitPattern) == reference.1.map(\.bitPattern))
    }

    /// The polynomial log is within 1 ulp of ln u1 on all 2²⁴ inputs, and the polynomial cos
    /// and sin within 1.1 ulp of cos 2πu2 and sin 2πu2 on all 2²⁴ inputs (every octant boundary
    /// included), against float64 libm. (Measured: 0.82 ulp and 1.02 ulp.)
    func testPolynomialLogAndSincosAccuracy() {
        /// |got − exact| in units of the last place of the float nearest `exact` (0 when exact is 0 and got is 0).
        func ulps(_ got: Float, _ exact: Double) -> Double {
            exact == 0 ? (got == 0 ? 0 : .infinity) : abs(Double(got) - exact) / Double(Float(exact).ulp)
        }
        var worstLog = 0.0, worstSincos = 0.0
        for n in 0..<UInt32(1 << 24) {
            worstLog = max(worstLog, ulps(csm_gaussian_log(n << 8), Foundation.log(Double(n + 1) / 16_777_216)))
            var cosine: Float = 0, sine: Float = 0
            csm_gaussian_sincos(n << 8, &cosine, &sine)
            // The exact angle in turns, reduced by whole quarter turns to [−1/8, 1/8) before the
            // float64 cos and sin, so that multiples of a quarter turn give exact zeros.
            let quarter = Int((n + (1 << 21)) >> 22), turns = Double(Int(n) - quarter << 22) / 16_777_216
            let (c, s) = (Foundation.cos(2 * Double.pi * turns), Foundation.sin(2 * Double.pi * turns))
            let rotated = [(c, s), (-s, c), (-c, -s), (s, -c)][quarter % 4]
            worstSincos = max(worstSincos, ulps(cosine, rotated.0), ulps(sine, rotated.1))
        }
        XCTAssertLessThanOrEqual(worstLog, 1.0)
        XCTAssertLessThanOrEqual(worstSincos, 1.1)
        print(String(format: "polynomial log: worst %.3f ulp; sincos: worst %.3f ulp", worstLog, worstSincos))
    }

    /// Entries of P generated per second on the calling thread, printed when `CSM_BENCH=1`;
    /// skipped otherwise (timings are not tests).
    func testGenerationRate() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["CSM_BENCH"] == "1", "set CSM_BENCH=1 to time generation")
        let projection = GaussianProjection(dimension: 4096, inputDimension: 1 << 20, seed: 11)
        let rows = 32, columns = 0..<(1 << 20)
        var checksum = 0.0, best = Double.infinity
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            for row in 0..<rows { checksum += Double(projection.entries(row: row, columns: columns)[row]) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let entries = Double(rows * columns.count)
        print(String(format: "GaussianProjection: %.0f M entries/s on one thread (best of 3, %.0f M entries, checksum %.6f)",
                     entries / best / 1e6, entries / 1e6, checksum))
    }

    /// `project` on chunks of 1, 256 and 2560 gradients (generation and products), seconds per
    /// gradient and GFLOP/s of the products on all cores, printed when `CSM_BENCH=1`; skipped
    /// otherwise. One gradient alone pays for all of P's generation; 2560 is a chunk of 256
    /// images with each of T = 10 levels projected on its own.
    func testProjectionRate() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["CSM_BENCH"] == "1", "set CSM_BENCH=1 to time the projection")
        let (k, d) = (2048, 1 << 18)
        let projection = GaussianProjection(dimension: k, inputDimension: d, seed: 3)
        let source = GaussianStream(seed: 2).values(2560 * d)
        for n in [1, 256, 2560] {
            let rows = Array(source[0..<(n * d)])
            var best = Double.infinity, checksum = 0.0
            for _ in 0..<2 {
                let start = DispatchTime.now().uptimeNanoseconds
                checksum += Double(projection.project(rows, count: n)[0])
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            print(String(format: "GaussianProjection.project: %d × %d → %d in %.3f s, %.2f ms per gradient, %.0f GFLOP/s (best of 2, checksum %.6f)",
                         n, d, k, best, best / Double(n) * 1e3, 2 * Double(n * d * k) / best / 1e9, checksum))
        }
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

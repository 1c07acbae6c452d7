import CSMAttribution
import CSMDiffusion
import CSMRandom
import XCTest

/// The kernel's two forms give the same scores, and both equal a slow direct solve.
final class AttributionKernelTests: XCTestCase {
    /// Solves A x = b by Gaussian elimination with partial pivoting (A n × n, row-major).
    func solve(_ a: [Double], _ b: [Double], _ n: Int) -> [Double] {
        var a = a, b = b
        for c in 0..<n {
            let p = (c..<n).max { abs(a[$0 * n + c]) < abs(a[$1 * n + c]) }!
            for j in 0..<n { a.swapAt(c * n + j, p * n + j) }
            b.swapAt(c, p)
            for r in (c + 1)..<n {
                let f = a[r * n + c] / a[c * n + c]
                for j in c..<n { a[r * n + j] -= f * a[c * n + j] }
                b[r] -= f * b[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            x[r] = (b[r] - ((r + 1)..<n).reduce(0.0) { $0 + a[r * n + $1] * x[$1] }) / a[r * n + r]
        }
        return x
    }

    func testFormsAgreeWithADirectSolve() throws {
        for (n, k) in [(12, 5), (5, 12)] {
            let phi = GaussianStream(seed: 1).values(n * k), queries = GaussianStream(seed: 2).values(3 * k)
            let weights = (0..<n).map { Float(1 + $0 % 3) }
            let damping = 0.3
            // Direct: score(q, i) = φ_q (ΦᵀΦ + λI)⁻¹ φ_iᵀ w_i, solving (ΦᵀΦ + λI) y = φ_qᵀ.
            var gram = [Double](repeating: 0, count: k * k)
            for a in 0..<k {
                for b in 0..<k { gram[a * k + b] = (0..<n).reduce(0.0) { $0 + Double(phi[$1 * k + a]) * Double(phi[$1 * k + b]) } }
                gram[a * k + a] += damping
            }
            for form in [AttributionKernel.Form.features, .gram] {
                let kernel = try AttributionKernel(features: phi, count: n, dimension: k, damping: damping, form: form)
                let scores = kernel.scores(queries: queries, queryCount: 3, features: phi, count: n, dimension: k, weights: weights)
                for q in 0..<3 {
                    let y = solve(gram, (0..<k).map { Double(queries[q * k + $0]) }, k)
                    for i in 0..<n {
                        let expected = (0..<k).reduce(0.0) { $0 + y[$1] * Double(phi[i * k + $1]) } * Double(weights[i])
                        XCTAssertEqual(scores[q * n + i], expected, accuracy: 1e-9 * (1 + abs(expected)), "\(form) n \(n) k \(k)")
                    }
                }
            }
        }
    }

    func testUndampedRankDeficientKernelIsRefused() {
        let phi = [Float](repeating: 1, count: 4 * 3)
        XCTAssertThrowsError(try AttributionKernel(features: phi, count: 4, dimension: 3, damping: 0))
    }

    func testTopScoresAreBestFirstWithTiesByIndex() {
        let top = TopScores([0.5, 2, -1, 2, 0.7][...], top: 3)
        XCTAssertEqual(top.indices, [1, 3, 4])
        XCTAssertEqual(top.scores, [2, 2, 0.7])
    }
}

import CSMNumerics
import Foundation
import XCTest

/// Self-attention's backward against float64 central finite differences of a slow float64
/// reference forward, on the scalar loss L = Σ r·y with fixed random r (so dL/dy = r), with
/// `GradientCheckTests`' helpers (finite-difference step 1e-5).
extension GradientCheckTests {
    /// `Attention.apply` on NHWC in float64, straight from the definition: per image, head
    /// and query pixel i, y_i = Σ_j softmax_j(q_i·k_j/√(C/heads))·v_j over the image's pixels.
    func referenceAttention(_ qkv: [Double], count n: Int, pixels hw: Int, channels c: Int, heads: Int) -> [Double] {
        var y = [Double](repeating: 0, count: n * hw * c)
        let size = c / heads, scale = 1 / Double(size).squareRoot()
        for b in 0..<n { for h in 0..<heads { for i in 0..<hw {
            let q = (b * hw + i) * 3 * c + h * size
            let scores = (0..<hw).map { j in
                let k = (b * hw + j) * 3 * c + c + h * size
                return (0..<size).reduce(0.0) { $0 + qkv[q + $1] * qkv[k + $1] } * scale
            }
            let maximum = scores.max()!
            let weights = scores.map { Foundation.exp($0 - maximum) }
            let total = weights.reduce(0, +)
            for d in 0..<size {
                let v = { (j: Int) in qkv[(b * hw + j) * 3 * c + 2 * c + h * size + d] }
                y[(b * hw + i) * c + h * size + d] = (0..<hw).reduce(0.0) { $0 + weights[$1] / total * v($1) }
            }
        } } }
        return y
    }

    // MARK: Attention

    func testAttentionGradientMatchesFiniteDifferences() {
        let n = 2, c = 8, h = 3, w = 4, hw = h * w
        var worst: [String: Double] = [:]
        for heads in [1, 2] {
            let label = "\(heads) heads"
            let seed = UInt64(400 + 10 * heads)
            // Queries and keys spread wider than [-1, 1), so that the softmax is far from uniform.
            let qkv = random(n * hw * 3 * c, seed: seed + 1).enumerated().map { $0.offset % (3 * c) < 2 * c ? $0.element * 2.5 : $0.element }
            let r = random(n * hw * c, seed: seed + 2)
            let reference = { (xs: [Double]) in self.referenceAttention(xs, count: n, pixels: hw, channels: c, heads: heads) }

            // The forward kernel computes the function whose gradient is taken.
            let map = FeatureMap(count: n, height: h, width: w, channels: 3 * c, values: qkv)
            let forward = Attention.apply(map, heads: heads)
            XCTAssertEqual([forward.count, forward.height, forward.width, forward.channels], [n, h, w, c], label)
            let forwardError = assertNonzeroGradient(forward.values, reference(qkv.map(Double.init)), tolerance: 1e-5, "forward \(label)")
            worst["forward"] = max(worst["forward"] ?? 0, forwardError)

            let got = Attention.backward(FeatureMap(count: n, height: h, width: w, channels: c, values: r), qkv: map, heads: heads)
            XCTAssertEqual([got.count, got.height, got.width, got.channels], [n, h, w, 3 * c], label)
            let expected = numericGradient(qkv, step: 1e-5) { dot(r, reference($0)) }
            // dq, dk and dv each against their own scale, so that a wrong small part still fails.
            for (part, name) in ["dq", "dk", "dv"].enumerated() {
                let indices = expected.indices.filter { $0 % (3 * c) / c == part }
                let error = assertNonzeroGradient(indices.map { got.values[$0] }, indices.map { expected[$0] }, "\(name) \(label)")
                worst[name] = max(worst[name] ?? 0, error)
            }
        }
        for (name, error) in worst.sorted(by: { $0.key < $1.key }) { print("attention \(name): largest relative error \(error)") }
    }
}

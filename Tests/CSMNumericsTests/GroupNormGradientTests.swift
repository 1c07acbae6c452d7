import CSMNumerics
import Foundation
import XCTest

/// The fused group norm's backward and SiLU's against float64 central finite differences of
/// a slow float64 reference forward, on the scalar loss L = Σ r·y with fixed random r (so
/// dL/dy = r), with `GradientCheckTests`' helpers (finite-difference step 1e-5).
extension GradientCheckTests {
    /// max |got − expected| ≤ tolerance · max |expected|, and expected is not all (nearly)
    /// zero, so that a kernel returning zeros fails. Returns the relative error.
    @discardableResult
    func assertNonzeroGradient(_ got: [Float]?, _ expected: [Double], tolerance: Double = 1e-4, _ message: String,
                        file: StaticString = #filePath, line: UInt = #line) -> Double {
        guard let got else {
            XCTFail("\(message): no gradient", file: file, line: line)
            return .infinity
        }
        XCTAssertEqual(got.count, expected.count, message, file: file, line: line)
        let scale = expected.map { abs($0) }.max() ?? 0
        XCTAssertGreaterThan(scale, 1e-3, "\(message): the expected gradient is zero, the check proves nothing", file: file, line: line)
        var worst = 0.0
        for i in 0..<min(got.count, expected.count) { worst = max(worst, abs(Double(got[i]) - expected[i])) }
        let relative = worst / max(scale, .leastNormalMagnitude)
        XCTAssertLessThanOrEqual(relative, tolerance, "\(message): worst difference \(worst), scale \(scale)", file: file, line: line)
        return relative
    }

    /// y = act((GN(x + preBias)·postScale) + postShift) on NHWC in float64, straight from
    /// the definition (biased variance over each group's channels × pixels, per image).
    func referenceGroupNorm(_ x: [Double], count n: Int, pixels hw: Int, channels c: Int, groups: Int, gamma: [Double],
                            beta: [Double], preBias: [Double]?, postScale: [Double]?, postShift: [Double]?, silu: Bool,
                            epsilon: Double = 1e-5) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        let size = c / groups
        for b in 0..<n { for g in 0..<groups {
            // The group's positions in x and its values z = x + preBias.
            let indices = (0..<hw).flatMap { p in ((g * size)..<((g + 1) * size)).map { (b * hw + p) * c + $0 } }
            let z = indices.map { x[$0] + (preBias?[b * c + $0 % c] ?? 0) }
            let mean = z.reduce(0, +) / Double(z.count)
            let variance = z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(z.count)
            for (i, v) in zip(indices, z) {
                let ch = i % c
                let normalised = (v - mean) / (variance + epsilon).squareRoot() * gamma[ch] + beta[ch]
                let u = normalised * (postScale?[b * c + ch] ?? 1) + (postShift?[b * c + ch] ?? 0)
                y[i] = silu ? u / (1 + Foundation.exp(-u)) : u
            }
        } }
        return y
    }

    // MARK: Group norm

    func testGroupNormGradientsMatchFiniteDifferences() {
        let n = 2, c = 16, groups = 4, h = 3, w = 5, hw = h * w
        // (silu, preBias, postScale, postShift): every optional input alone and together, with and without SiLU.
        let cases = [(false, false, false, false), (true, false, false, false), (true, true, false, false),
                     (false, true, false, false), (true, false, true, true), (false, false, true, true),
                     (true, false, true, false), (false, false, false, true), (true, true, true, true), (false, true, true, true)]
        var worst: [String: Double] = [:]
        for (index, (silu, withPre, withScale, withShift)) in cases.enumerated() {
            let label = "silu \(silu) preBias \(withPre) postScale \(withScale) postShift \(withShift)"
            let seed = UInt64(100 + 10 * index)
            // Offset channel means and a spread unlike 1, so that the statistics matter.
            let x = random(n * hw * c, seed: seed + 1).enumerated().map { $0.element * 1.7 + Float($0.offset % c) * 0.2 - 1 }
            let gamma = random(c, seed: seed + 2).map { $0 + 1.2 }, beta = random(c, seed: seed + 3)
            let pre = withPre ? random(n * c, seed: seed + 4) : nil
            let scale = withScale ? random(n * c, seed: seed + 5).map { $0 + 1 } : nil
            let shift = withShift ? random(n * c, seed: seed + 6) : nil
            let r = random(x.count, seed: seed + 7)
            let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
            let pd = pre?.map(Double.init), sd = scale?.map(Double.init), td = shift?.map(Double.init)
            func reference(x: [Double]? = nil, gamma: [Double]? = nil, beta: [Double]? = nil, pre: [Double]? = nil,
                           scale: [Double]? = nil, shift: [Double]? = nil) -> [Double] {
                referenceGroupNorm(x ?? xd, count: n, pixels: hw, channels: c, groups: groups, gamma: gamma ?? gd, beta: beta ?? bd,
                                   preBias: pre ?? pd, postScale: scale ?? sd, postShift: shift ?? td, silu: silu)
            }

            // The forward kernel computes the function whose gradients are taken.
            let weights = GroupNormWeights(gamma: gamma, beta: beta, groups: groups, epsilon: 1e-5)
            let map = FeatureMap(count: n, height: h, width: w, channels: c, values: x)
            let forward = GroupNorm.apply(map, weights, preBias: pre, postScale: scale, postShift: shift, silu: silu)
            let forwardError = assertNonzeroGradient(forward.values, reference(), tolerance: 1e-5, "forward \(label)")
            worst["forward"] = max(worst["forward"] ?? 0, forwardError)

            let dy = FeatureMap(count: n, height: h, width: w, channels: c, values: r)
            let got = GroupNorm.backward(dy, input: map, weights, preBias: pre, postScale: scale, postShift: shift, silu: silu)
            XCTAssertEqual([got.dx.count, got.dx.height, got.dx.width, got.dx.channels], [n, h, w, c], label)
            func check(_ name: String, _ got: [Float]?, _ expected: [Double]) {
                worst[name] = max(worst[name] ?? 0, assertNonzeroGradient(got, expected, "\(name) \(label)"))
            }
            check("dx", got.dx.values, numericGradient(x, step: 1e-5) { dot(r, reference(x: $0)) })
            check("dGamma", got.dGamma, numericGradient(gamma, step: 1e-5) { dot(r, reference(gamma: $0)) })
            check("dBeta", got.dBeta, numericGradient(beta, step: 1e-5) { dot(r, reference(beta: $0)) })
            if let pre { check("dPreBias", got.dPreBias, numericGradient(pre, step: 1e-5) { dot(r, reference(pre: $0)) }) } else { XCTAssertNil(got.dPreBias, label) }
            if let scale { check("dPostScale", got.dPostScale, numericGradient(scale, step: 1e-5) { dot(r, reference(scale: $0)) }) } else { XCTAssertNil(got.dPostScale, label) }
            if let shift { check("dPostShift", got.dPostShift, numericGradient(shift, step: 1e-5) { dot(r, reference(shift: $0)) }) } else { XCTAssertNil(got.dPostShift, label) }
        }
        for (name, error) in worst.sorted(by: { $0.key < $1.key }) { print("group norm \(name): largest relative error \(error)") }
    }

    /// Channel counts of EDM's networks (several SIMD widths and a tail), one image, no options.
    func testGroupNormGradientWithWideChannels() {
        let c = 40, groups = 8, h = 2, w = 3
        let x = random(h * w * c, seed: 201), gamma = random(c, seed: 202), beta = random(c, seed: 203), r = random(x.count, seed: 204)
        let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
        let reference = { (xs: [Double], gs: [Double], bs: [Double]) in
            self.referenceGroupNorm(xs, count: 1, pixels: h * w, channels: c, groups: groups, gamma: gs, beta: bs, preBias: nil,
                                    postScale: nil, postShift: nil, silu: true)
        }
        let got = GroupNorm.backward(FeatureMap(count: 1, height: h, width: w, channels: c, values: r),
                                     input: FeatureMap(count: 1, height: h, width: w, channels: c, values: x),
                                     GroupNormWeights(gamma: gamma, beta: beta, groups: groups, epsilon: 1e-5), silu: true)
        assertNonzeroGradient(got.dx.values, numericGradient(x, step: 1e-5) { dot(r, reference($0, gd, bd)) }, "dx, 40 channels")
        assertNonzeroGradient(got.dGamma, numericGradient(gamma, step: 1e-5) { dot(r, reference(xd, $0, bd)) }, "dGamma, 40 channels")
        assertNonzeroGradient(got.dBeta, numericGradient(beta, step: 1e-5) { dot(r, reference(xd, gd, $0)) }, "dBeta, 40 channels")
        XCTAssertNil(got.dPreBias)
        XCTAssertNil(got.dPostScale)
        XCTAssertNil(got.dPostShift)
    }

    // MARK: SiLU

    func testSiLUForwardAndGradientMatchFiniteDifferences() {
        // 210 values (not a multiple of 16), spread over [-8, 8) plus the far tails and 0.
        var x = random(2 * 3 * 5 * 7, seed: 301).map { $0 * 8 }
        x[0] = -30; x[1] = 30; x[2] = 0; x[3] = -12; x[209] = 15
        let r = random(x.count, seed: 302)
        let reference = { (xs: [Double]) in xs.map { $0 / (1 + Foundation.exp(-$0)) } }
        let map = FeatureMap(count: 2, height: 3, width: 5, channels: 7, values: x)
        let forwardError = assertNonzeroGradient(SiLU.forward(map).values, reference(x.map(Double.init)), tolerance: 1e-6, "SiLU forward")
        let dx = SiLU.backward(FeatureMap(count: 2, height: 3, width: 5, channels: 7, values: r), input: map)
        XCTAssertEqual([dx.count, dx.height, dx.width, dx.channels], [2, 3, 5, 7])
        let error = assertNonzeroGradient(dx.values, numericGradient(x, step: 1e-5) { dot(r, reference($0)) }, "SiLU gradient")
        print("SiLU: largest relative error \(forwardError) forward, \(error) gradient")
    }
}

import CSMNumerics
import XCTest

/// EDM's FIR resampling backward (`ResampleFilter.downBackward` / `upBackward`) against
/// float64 central finite differences of a slow float64 reference forward, on the scalar
/// loss L = Σ r·y with fixed random r (so dL/dy = r), and the adjoint identity
/// ⟨resample(x), r⟩ = ⟨x, backward(r)⟩, with `GradientCheckTests`' helpers.
extension GradientCheckTests {
    /// The filters EDM uses and the paddings it passes them: [1,1] (DDPM++, ADM) plain and
    /// fused with padding 0; [1,3,3,1] (NCSN++) plain and fused 1×1 with padding 1, fused down
    /// with 0 (after a convolution padded by w_pad + f_pad); padding 2 as a wider border; and
    /// an asymmetric odd-length filter, under which a flipped kernel in a backward would show
    /// (EDM's filters are symmetric). Both directions run every case.
    var resampleCases: [(taps: [Float], padding: Int)] {
        [([1, 1], 0), ([1, 3, 3, 1], 1), ([1, 3, 3, 1], 0), ([1, 3, 3, 1], 2), ([2, 5, 3], 1)]
    }

    /// The 1-D taps in float64, normalised to sum 1.
    func normalisedTaps(_ taps: [Float]) -> [Double] {
        let total = taps.reduce(0.0) { $0 + Double($1) }
        return taps.map { Double($0) / total }
    }

    /// y[oy, ox] = Σ f[ky]·f[kx]·x[2·oy − p + ky, 2·ox − p + kx] (zero outside x), per image
    /// and channel, NHWC in float64: PyTorch's depthwise conv2d with f⊗f, stride 2, padding p.
    func referenceResampleDown(_ x: [Double], n: Int, h: Int, w: Int, c: Int, taps: [Float], padding p: Int) -> [Double] {
        let f = normalisedTaps(taps), l = f.count
        let oh = (h + 2 * p - l) / 2 + 1, ow = (w + 2 * p - l) / 2 + 1
        var y = [Double](repeating: 0, count: n * oh * ow * c)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
            var sum = 0.0
            for ky in 0..<l { for kx in 0..<l {
                let iy = 2 * oy - p + ky, ix = 2 * ox - p + kx
                guard iy >= 0 && iy < h && ix >= 0 && ix < w else { continue }
                sum += f[ky] * f[kx] * x[((b * h + iy) * w + ix) * c + ch]
            } }
            y[((b * oh + oy) * ow + ox) * c + ch] = sum
        } } } }
        return y
    }

    /// PyTorch's depthwise conv_transpose2d with 4·f⊗f, stride 2, padding p, NHWC in float64:
    /// y[oy, ox] = Σ 4·f[ky]·f[kx]·x[iy, ix] over 2·iy + ky − p = oy and 2·ix + kx − p = ox.
    func referenceResampleUp(_ x: [Double], n: Int, h: Int, w: Int, c: Int, taps: [Float], padding p: Int) -> [Double] {
        let f = normalisedTaps(taps), l = f.count
        let oh = 2 * (h - 1) - 2 * p + l, ow = 2 * (w - 1) - 2 * p + l
        var y = [Double](repeating: 0, count: n * oh * ow * c)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
            var sum = 0.0
            for ky in 0..<l { for kx in 0..<l {
                // The input pixel that tap (ky, kx) carries to (oy, ox), if any.
                let ty = oy + p - ky, tx = ox + p - kx
                guard ty >= 0 && tx >= 0 && ty % 2 == 0 && tx % 2 == 0 && ty / 2 < h && tx / 2 < w else { continue }
                sum += 4 * f[ky] * f[kx] * x[((b * h + ty / 2) * w + tx / 2) * c + ch]
            } }
            y[((b * oh + oy) * ow + ox) * c + ch] = sum
        } } } }
        return y
    }

    /// |⟨y, r⟩ − ⟨x, dx⟩| relative to Σ |x·dx|, both inner products in float64.
    func adjointError(x: [Float], dx: [Float], y: [Float], r: [Float]) -> Double {
        let lhs = zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x, dx).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let scale = zip(x, dx).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
        return abs(lhs - rhs) / max(scale, .leastNormalMagnitude)
    }

    /// One resampling direction over `resampleCases` and the given input sizes: the float
    /// forward against the float64 reference, dL/dx against central differences of the
    /// reference, and the adjoint identity. Prints the largest error of each check.
    func checkResampleGradient(up: Bool, sizes: [(h: Int, w: Int)], file: StaticString = #filePath, line: UInt = #line) {
        let n = 2, c = 3, direction = up ? "up" : "down"
        var worstForward = 0.0, worstGradient = 0.0, worstAdjoint = 0.0
        for (index, (taps, padding)) in resampleCases.enumerated() {
            for (sizeIndex, (h, w)) in sizes.enumerated() {
                let label = "\(direction) taps \(taps) padding \(padding) \(h)×\(w)"
                let filter = ResampleFilter(taps)
                let seed = UInt64(400 + 20 * index + 4 * sizeIndex) + (up ? 1000 : 0)
                let x = random(n * h * w * c, seed: seed + 1)
                let map = FeatureMap(count: n, height: h, width: w, channels: c, values: x)
                func reference(_ xs: [Double]) -> [Double] {
                    up ? referenceResampleUp(xs, n: n, h: h, w: w, c: c, taps: taps, padding: padding)
                       : referenceResampleDown(xs, n: n, h: h, w: w, c: c, taps: taps, padding: padding)
                }

                // The forward kernel computes the function whose gradient is taken.
                let y = up ? filter.up(map, padding: padding) : filter.down(map, padding: padding)
                worstForward = max(worstForward, assertNonzeroGradient(y.values, reference(x.map(Double.init)), tolerance: 1e-5,
                                                                        "forward \(label)", file: file, line: line))

                let r = random(y.values.count, seed: seed + 2)
                let dy = FeatureMap(count: n, height: y.height, width: y.width, channels: c, values: r)
                let dx = up ? filter.upBackward(dy, inputHeight: h, inputWidth: w, padding: padding)
                            : filter.downBackward(dy, inputHeight: h, inputWidth: w, padding: padding)
                XCTAssertEqual([dx.count, dx.height, dx.width, dx.channels], [n, h, w, c], label, file: file, line: line)
                let expected = numericGradient(x, step: 1e-5) { dot(r, reference($0)) }
                worstGradient = max(worstGradient, assertNonzeroGradient(dx.values, expected, "dx \(label)", file: file, line: line))

                let adjoint = adjointError(x: x, dx: dx.values, y: y.values, r: r)
                XCTAssertLessThanOrEqual(adjoint, 1e-5, "adjoint \(label)", file: file, line: line)
                worstAdjoint = max(worstAdjoint, adjoint)
            }
        }
        print("resample \(direction): largest relative error \(worstForward) forward, \(worstGradient) dx, \(worstAdjoint) adjoint")
    }

    /// Even sizes, odd sizes (whose last row and column no stride-2 window may reach) and
    /// mixed; 4×4 is the smallest input the 4-tap filter accepts without padding.
    func testResampleDownGradientMatchesFiniteDifferences() {
        checkResampleGradient(up: false, sizes: [(6, 4), (5, 7), (4, 9)])
    }

    /// Even, odd and mixed sizes; 2×3 keeps an output under the 4-tap filter with padding 2.
    func testResampleUpGradientMatchesFiniteDifferences() {
        checkResampleGradient(up: true, sizes: [(4, 2), (3, 5), (2, 3)])
    }
}

import CSMNumerics
import Foundation
import XCTest

/// Each kernel against a slow, obviously correct implementation.
final class KernelReferenceTests: XCTestCase {
    /// Deterministic pseudo-random values in [-1, 1).
    func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
    }

    func assertClose(_ a: [Float], _ b: [Float], tolerance: Float, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        var worst: Float = 0
        for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a[i] - b[i])) }
        XCTAssertLessThanOrEqual(worst, tolerance, message, file: file, line: line)
    }

    /// GEMM on both sides of the OpenBLAS / oneDNN split against float64, every transpose,
    /// α and β; and with B untransposed (what convolutions use) a row computed alone equals
    /// the same row inside a larger product bit for bit (an image must not depend on the
    /// batch it ran in).
    func testGEMMAgainstReferenceAndIndependentOfRowCount() {
        for (m, n, k) in [(7, 16, 24), (5, 160, 136), (1, 144, 256), (96, 256, 128)] {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    let a = random(m * k, seed: UInt64(m + k)), b = random(k * n, seed: UInt64(n)), c0 = random(m * n, seed: 3)
                    let alpha: Float = 0.75, beta: Float = 0.5
                    var c = c0
                    let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                                   b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: n)
                    } } }
                    var expected = [Float](repeating: 0, count: m * n)
                    for i in 0..<m { for j in 0..<n {
                        var sum = 0.0
                        for p in 0..<k {
                            sum += Double(transposeA ? a[p * m + i] : a[i * k + p]) * Double(transposeB ? b[j * k + p] : b[p * n + j])
                        }
                        expected[i * n + j] = Float(Double(alpha) * sum + Double(beta) * Double(c0[i * n + j]))
                    } }
                    let label = "\(m)×\(n)×\(k) transposeA \(transposeA) transposeB \(transposeB)"
                    assertClose(c, expected, tolerance: 1e-4 * Float(k), label)
                    // Row 0 alone (for op(A) transposed: column 0 of A, leading dimension 1).
                    var row = Array(c0[0..<n])
                    let a0 = transposeA ? (0..<k).map { a[$0 * m] } : Array(a[0..<k])
                    a0.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in row.withUnsafeMutableBufferPointer { rp in
                        BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: 1, n: n, k: k, alpha: alpha, a: ap.baseAddress!,
                                   lda: transposeA ? 1 : k, b: bp.baseAddress!, ldb: ldb, beta: beta, c: rp.baseAddress!, ldc: n)
                    } } }
                    if transposeB {
                        // OpenBLAS computes a single row with B transposed by its matrix-vector path.
                        assertClose(row, Array(c[0..<n]), tolerance: 1e-5 * Float(k), "row 0 alone, \(label)")
                    } else {
                        XCTAssertEqual(row, Array(c[0..<n]), "row 0 alone, \(label)")
                    }
                }
            }
        }
    }

    /// Direct convolution on NCHW, PyTorch semantics.
    func referenceConvolution(_ x: [Float], n: Int, cin: Int, h: Int, w: Int, weight: [Float], bias: [Float]?, cout: Int, k: Int, padding: Int) -> [Float] {
        let oh = h + 2 * padding - k + 1, ow = w + 2 * padding - k + 1
        var y = [Float](repeating: 0, count: n * cout * oh * ow)
        for b in 0..<n { for co in 0..<cout { for oy in 0..<oh { for ox in 0..<ow {
            var sum = Double(bias?[co] ?? 0)
            for ci in 0..<cin { for ky in 0..<k { for kx in 0..<k {
                let iy = oy - padding + ky, ix = ox - padding + kx
                if iy >= 0 && iy < h && ix >= 0 && ix < w {
                    sum += Double(x[((b * cin + ci) * h + iy) * w + ix]) * Double(weight[((co * cin + ci) * k + ky) * k + kx])
                }
            } } }
            y[((b * cout + co) * oh + oy) * ow + ox] = Float(sum)
        } } } }
        return y
    }

    func testConvolutionMatchesDirect() {
        for (cin, cout, k, padding, size) in [(3, 5, 3, 1, 7), (4, 6, 1, 0, 5), (2, 3, 3, 2, 6), (17, 9, 3, 0, 5)] {
            let x = random(2 * cin * size * size, seed: 1), weight = random(cout * cin * k * k, seed: 2), bias = random(cout, seed: 3)
            let got = Convolution.apply(FeatureMap(nchw: x, count: 2, channels: cin, height: size, width: size),
                                        ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, kernel: k),
                                        padding: padding).nchw
            let expected = referenceConvolution(x, n: 2, cin: cin, h: size, w: size, weight: weight, bias: bias, cout: cout, k: k, padding: padding)
            assertClose(got, expected, tolerance: 1e-5, "cin \(cin) cout \(cout) k \(k) padding \(padding)")
        }
    }

    func testWinogradMatchesDirect() {
        // Odd and even sizes (edge tiles), channel counts off the vector width.
        for tile in [2, 4] {
            for (cin, cout, h, w) in [(16, 16, 8, 8), (32, 48, 7, 7), (16, 32, 5, 6), (32, 16, 28, 28), (64, 64, 14, 14), (16, 16, 1, 3),
                                      // Counts that are not multiples of 16: a partial last vector, or only one.
                                      (24, 40, 7, 9), (8, 8, 5, 5), (3, 5, 6, 4), (1, 17, 3, 3), (40, 24, 4, 1), (33, 1, 2, 5)] {
                let x = random(3 * cin * h * w, seed: 4), weight = random(cout * cin * 9, seed: 5), bias = random(cout, seed: 6)
                let got = Winograd.apply(FeatureMap(nchw: x, count: 3, channels: cin, height: h, width: w),
                                         WinogradWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, tile: tile)).nchw
                let expected = referenceConvolution(x, n: 3, cin: cin, h: h, w: w, weight: weight, bias: bias, cout: cout, k: 3, padding: 1)
                assertClose(got, expected, tolerance: 1e-6 * Float(cin * 9), "F(\(tile)) cin \(cin) cout \(cout) \(h)x\(w)")
            }
        }
    }

    func testWinogradResidualIsAddedAsAfterwards() {
        // The residual added in the output transform gives the floats of a separate pass,
        // at both tiles and both precisions, with edge tiles and a channel count off the vector width.
        for precision in [Precision.fp32, .bf16] {
            for tile in [2, 4] {
                for (cin, cout, h, w) in [(16, 24, 7, 9), (32, 17, 8, 8)] {
                    let x = FeatureMap(nchw: random(2 * cin * h * w, seed: 13), count: 2, channels: cin, height: h, width: w)
                    let r = FeatureMap(nchw: random(2 * cout * h * w, seed: 14), count: 2, channels: cout, height: h, width: w)
                    let weights = WinogradWeights(pytorch: random(cout * cin * 9, seed: 15), bias: random(cout, seed: 16),
                                                  outputChannels: cout, inputChannels: cin, tile: tile, precision: precision)
                    for scale: Float in [1, 0.7071] {
                        var expected = Winograd.apply(x, weights)
                        expected.addScaled(r, scale: scale)
                        let got = Winograd.apply(x, weights, residual: r, scale: scale)
                        XCTAssertEqual(got.values, expected.values, "\(precision) F(\(tile)) \(cin)→\(cout) \(h)x\(w) scale \(scale)")
                    }
                }
            }
        }
    }

    func testGroupNormMatchesDefinition() {
        let n = 2, c = 16, h = 3, w = 5, groups = 4
        let x = random(n * c * h * w, seed: 7), gamma = random(c, seed: 8), beta = random(c, seed: 9)
        let pre = random(n * c, seed: 10), scale = random(n * c, seed: 11), shift = random(n * c, seed: 12)
        let got = GroupNorm.apply(FeatureMap(nchw: x, count: n, channels: c, height: h, width: w),
                                  GroupNormWeights(gamma: gamma, beta: beta, groups: groups, epsilon: 1e-5),
                                  preBias: pre, postScale: scale, postShift: shift, silu: true).nchw
        var expected = [Float](repeating: 0, count: x.count)
        let per = c / groups * h * w
        for b in 0..<n { for g in 0..<groups {
            var values: [Double] = []
            for ch in (g * c / groups)..<((g + 1) * c / groups) { for p in 0..<(h * w) { values.append(Double(x[(b * c + ch) * h * w + p] + pre[b * c + ch])) } }
            let mean = values.reduce(0, +) / Double(per)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(per)
            for ch in (g * c / groups)..<((g + 1) * c / groups) { for p in 0..<(h * w) {
                let v = (Double(x[(b * c + ch) * h * w + p] + pre[b * c + ch]) - mean) / (variance + 1e-5).squareRoot()
                let z = (v * Double(gamma[ch]) + Double(beta[ch])) * Double(scale[b * c + ch]) + Double(shift[b * c + ch])
                expected[(b * c + ch) * h * w + p] = Float(z / (1 + Foundation.exp(-z)))
            } }
        } }
        assertClose(got, expected, tolerance: 1e-5)
    }

    func testAttentionMatchesDefinition() {
        let n = 2, c = 8, heads = 2, hw = 6, ch = c / heads
        let qkv = random(n * hw * 3 * c, seed: 13)
        let got = Attention.apply(FeatureMap(count: n, height: 2, width: 3, channels: 3 * c, values: qkv), heads: heads).values
        var expected = [Float](repeating: 0, count: n * hw * c)
        for b in 0..<n { for head in 0..<heads { for q in 0..<hw {
            var scores = (0..<hw).map { k -> Double in
                (0..<ch).map { e in Double(qkv[(b * hw + q) * 3 * c + head * ch + e]) * Double(qkv[(b * hw + k) * 3 * c + c + head * ch + e]) }
                    .reduce(0, +) / Double(ch).squareRoot()
            }
            let m = scores.max()!
            scores = scores.map { Foundation.exp($0 - m) }
            let total = scores.reduce(0, +)
            for e in 0..<ch {
                expected[(b * hw + q) * c + head * ch + e] = Float((0..<hw).map { scores[$0] / total * Double(qkv[(b * hw + $0) * 3 * c + 2 * c + head * ch + e]) }.reduce(0, +))
            }
        } } }
        assertClose(got, expected, tolerance: 1e-5)
    }

    func testResampleMatchesDefinition() {
        let x = FeatureMap(nchw: random(2 * 3 * 6 * 6, seed: 14), count: 2, channels: 3, height: 6, width: 6)
        // [1,1]: 2×2 average down, nearest-neighbour up.
        let box = ResampleFilter([1, 1])
        let down = box.down(x, padding: box.padding)
        XCTAssertEqual(down.height, 3)
        let expectedDown = (x.values[0 * 3] + x.values[1 * 3] + x.values[6 * 3] + x.values[7 * 3]) / 4
        XCTAssertEqual(down.values[0], expectedDown, accuracy: 1e-6)
        let up = box.up(x, padding: box.padding)
        XCTAssertEqual(up.height, 12)
        for (oy, ox) in [(0, 0), (1, 1), (5, 4), (11, 11)] {
            XCTAssertEqual(up.values[(oy * 12 + ox) * 3 + 1], x.values[((oy / 2) * 6 + ox / 2) * 3 + 1], accuracy: 1e-6)
        }
        // [1,3,3,1]: sizes and mass preservation away from the border.
        let smooth = ResampleFilter([1, 3, 3, 1])
        XCTAssertEqual(smooth.down(x, padding: smooth.padding).height, 3)
        XCTAssertEqual(smooth.up(x, padding: smooth.padding).height, 12)
        let constant = FeatureMap(count: 1, height: 8, width: 8, channels: 1, values: [Float](repeating: 1, count: 64))
        XCTAssertEqual(smooth.down(constant, padding: smooth.padding).values[1 * 4 + 1], 1, accuracy: 1e-6)
        XCTAssertEqual(smooth.up(constant, padding: smooth.padding).values[5 * 16 + 5], 1, accuracy: 1e-6)
    }

    func testVectorExpAndSiLU() {
        var worst: Float = 0
        for i in -800..<800 {
            let v = Float(i) * 0.1
            let got = VectorMath.exp(SIMD16<Float>(repeating: v))[0]
            worst = max(worst, abs(got - Foundation.exp(v)) / Foundation.exp(v))
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(VectorMath.silu(2), 2 / (1 + Foundation.exp(-2)), accuracy: 1e-6)
        XCTAssertEqual(VectorMath.silu(-100), 0, accuracy: 1e-6)
    }

    func testLinearMatchesDefinition() {
        let x = random(3 * 5, seed: 15), w = random(4 * 5, seed: 16), b = random(4, seed: 17)
        let got = LinearWeights(weight: w, bias: b, inputs: 5, outputs: 4).apply(x, rows: 3)
        for r in 0..<3 { for o in 0..<4 {
            let expected = (0..<5).map { x[r * 5 + $0] * w[o * 5 + $0] }.reduce(b[o], +)
            XCTAssertEqual(got[r * 4 + o], expected, accuracy: 1e-5)
        } }
    }

    func testBLASUsesWideKernelsWhereAvailable() {
        let name = BLAS.coreName.lowercased()
        XCTAssertFalse(name.isEmpty)
        if CPUFeatures.hasAVX512 && ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil {
            XCTAssertFalse(["haswell", "zen", "sandybridge"].contains(name), "OpenBLAS runs \(name) kernels on an AVX-512 CPU")
        }
    }
}

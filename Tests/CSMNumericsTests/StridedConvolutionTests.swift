import CSMNumerics
import Foundation
import XCTest

/// Strided convolution against a direct, obviously correct implementation (PyTorch semantics).
final class StridedConvolutionTests: XCTestCase {
    /// Deterministic pseudo-random values in [-1, 1).
    func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
    }

    /// Direct convolution on NCHW with stride and zero padding.
    func reference(_ x: [Float], n: Int, cin: Int, h: Int, w: Int, weight: [Float], bias: [Float]?, cout: Int, k: Int,
                   stride: Int, padding: Int) -> (values: [Float], height: Int, width: Int) {
        let oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1
        var y = [Float](repeating: 0, count: n * cout * oh * ow)
        for b in 0..<n { for co in 0..<cout { for oy in 0..<oh { for ox in 0..<ow {
            var sum = Double(bias?[co] ?? 0)
            for ci in 0..<cin { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                if iy >= 0 && iy < h && ix >= 0 && ix < w {
                    sum += Double(x[((b * cin + ci) * h + iy) * w + ix]) * Double(weight[((co * cin + ci) * k + ky) * k + kx])
                }
            } } }
            y[((b * cout + co) * oh + oy) * ow + ox] = Float(sum)
        } } } }
        return (y, oh, ow)
    }

    /// At bf16 (oneDNN's direct kernels) against the reference on bf16-rounded inputs and weights.
    func testBF16MatchesDirectOnRoundedInputs() {
        let cin = 16, cout = 32, size = 9
        let x = random(2 * cin * size * size, seed: 31), weight = random(cout * cin * 9, seed: 32), bias = random(cout, seed: 33)
        let got = Convolution.apply(FeatureMap(nchw: x, count: 2, channels: cin, height: size, width: size),
                                    ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, kernel: 3,
                                                       precision: .bf16), stride: 2, padding: 1)
        let expected = reference(BFloat16Filters.rounded(x), n: 2, cin: cin, h: size, w: size, weight: BFloat16Filters.rounded(weight),
                                 bias: bias, cout: cout, k: 3, stride: 2, padding: 1)
        XCTAssertEqual([got.height, got.width], [expected.height, expected.width])
        let worst = zip(got.nchw, expected.values).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-5 * Float(cin * 9), "bf16 stride 2")
    }

    func testMatchesDirect() {
        // (cin, cout, kernel, stride, padding, height, width): ResNet's shapes plus odd sizes and strides.
        let cases = [(3, 5, 3, 2, 1, 7, 7), (4, 6, 1, 2, 0, 8, 8), (4, 6, 1, 2, 0, 7, 9), (2, 3, 7, 2, 3, 11, 9),
                     (5, 4, 3, 3, 0, 10, 10), (16, 32, 3, 2, 1, 28, 28), (6, 2, 3, 1, 1, 5, 6), (3, 4, 5, 4, 2, 3, 3)]
        for (cin, cout, k, stride, padding, h, w) in cases {
            let x = random(2 * cin * h * w, seed: 1), weight = random(cout * cin * k * k, seed: 2), bias = random(cout, seed: 3)
            let got = Convolution.apply(
                FeatureMap(nchw: x, count: 2, channels: cin, height: h, width: w),
                ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, kernel: k),
                stride: stride, padding: padding)
            let expected = reference(x, n: 2, cin: cin, h: h, w: w, weight: weight, bias: bias, cout: cout, k: k,
                                     stride: stride, padding: padding)
            let label = "cin \(cin) cout \(cout) k \(k) stride \(stride) padding \(padding) \(h)x\(w)"
            XCTAssertEqual(got.height, expected.height, label)
            XCTAssertEqual(got.width, expected.width, label)
            XCTAssertEqual(got.height, Convolution.outputSize(h, kernel: k, stride: stride, padding: padding), label)
            let values = got.nchw
            XCTAssertEqual(values.count, expected.values.count, label)
            var worst: Float = 0
            for i in 0..<min(values.count, expected.values.count) { worst = max(worst, abs(values[i] - expected.values[i])) }
            XCTAssertLessThanOrEqual(worst, 1e-5 * Float(cin * k * k), label)
        }
    }

    func testWithoutBias() {
        let x = random(3 * 4 * 6 * 6, seed: 4), weight = random(5 * 4 * 9, seed: 5)
        let got = Convolution.apply(FeatureMap(nchw: x, count: 3, channels: 4, height: 6, width: 6),
                                           ConvolutionWeights(pytorch: weight, bias: nil, outputChannels: 5, inputChannels: 4, kernel: 3),
                                           stride: 2, padding: 1).nchw
        let expected = reference(x, n: 3, cin: 4, h: 6, w: 6, weight: weight, bias: nil, cout: 5, k: 3, stride: 2, padding: 1).values
        XCTAssertEqual(got.count, expected.count)
        for i in 0..<min(got.count, expected.count) { XCTAssertEqual(got[i], expected[i], accuracy: 1e-4) }
    }
}

import CSMNumerics
import Foundation
import XCTest

/// The bf16 convolutions of `--precision bf16` (oneDNN's direct kernels) against float64
/// references on bf16-rounded inputs, and their independence of the batch.
extension KernelReferenceTests {
    func testBF16RoundsToNearestEven() {
        // 1 + 2⁻⁸ lies halfway between bf16 neighbours 1 and 1 + 2⁻⁷: ties go to the even one, 1.
        // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: to the even one, 1 + 2⁻⁶.
        let values: [Float] = [1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -2.5, .infinity, 0x1p-130]
        // Subnormals become zero (the AVX512-BF16 conversion's rule, kept by the scalar path).
        let expected: [Float] = [1, 1, 1 + 0x1p-6, 1 + 0x1p-7, -2.5, .infinity, 0]
        // More than 16 values, so that both the vector path and the remainder are used.
        let many = Array(repeating: values, count: 5).flatMap { $0 }
        XCTAssertEqual(BFloat16Filters.rounded(many), Array(repeating: expected, count: 5).flatMap { $0 })
        XCTAssertTrue(BFloat16Filters.rounded([.nan])[0].isNaN)
    }

    func testBF16ConvolutionMatchesReferenceOnRoundedInputs() {
        // 3×3 (channels below and above 16, and the widths Winograd runs at fp32), 1×1, no padding.
        for (cin, cout, k, padding, size) in [(3, 5, 3, 1, 7), (20, 33, 3, 1, 6), (48, 64, 1, 0, 5), (17, 9, 3, 0, 5), (64, 64, 3, 1, 9)] {
            let x = random(2 * cin * size * size, seed: 21), weight = random(cout * cin * k * k, seed: 22), bias = random(cout, seed: 23)
            let got = Convolution.apply(FeatureMap(nchw: x, count: 2, channels: cin, height: size, width: size),
                                        ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin,
                                                           kernel: k, precision: .bf16),
                                        padding: padding).nchw
            let expected = referenceConvolution(BFloat16Filters.rounded(x), n: 2, cin: cin, h: size, w: size,
                                                weight: BFloat16Filters.rounded(weight), bias: bias, cout: cout, k: k, padding: padding)
            assertClose(got, expected, tolerance: 1e-5 * Float(cin * k * k), "bf16 cin \(cin) cout \(cout) k \(k)")
        }
    }

    func testBF16FiltersServeEveryImageSize() {
        // One set of filters at the paper network's widest level and its image sizes: oneDNN may
        // need the filters in another layout at small sizes (a copy is made), never a wrong result.
        let cin = 256, cout = 256, k = 3
        let weight = random(cout * cin * k * k, seed: 24), bias = random(cout, seed: 25)
        let filters = ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, kernel: k, precision: .bf16)
        for size in [16, 8, 4, 8] {
            let x = random(2 * cin * size * size, seed: 26 + UInt64(size))
            let got = Convolution.apply(FeatureMap(nchw: x, count: 2, channels: cin, height: size, width: size), filters, padding: 1).nchw
            let expected = referenceConvolution(BFloat16Filters.rounded(x), n: 2, cin: cin, h: size, w: size,
                                                weight: BFloat16Filters.rounded(weight), bias: bias, cout: cout, k: k, padding: 1)
            assertClose(got, expected, tolerance: 1e-5 * Float(cin * k * k), "bf16 256→256 at \(size)×\(size)")
        }
    }

    func testBF16WinogradStaysNearDirect() {
        // The α² products in bf16 (transforms in fp32), against the exact convolution: the
        // transforms amplify bf16's rounding over a direct bf16 convolution's (measured on
        // random data: direct about 0.2 %, F(2,3) 0.4 %, F(4,3) 2.5 % relative RMS), but
        // boundedly; and the error is not zero (bf16 really ran).
        func relativeError(_ got: [Float], _ expected: [Float]) -> Double {
            var error = 0.0, norm = 0.0
            for i in expected.indices {
                error += Double(got[i] - expected[i]) * Double(got[i] - expected[i])
                norm += Double(expected[i]) * Double(expected[i])
            }
            return (error / norm).squareRoot()
        }
        for (cin, cout, h, w) in [(64, 64, 14, 14), (32, 48, 7, 9), (24, 40, 5, 5), (128, 256, 8, 8)] {
            let x = random(3 * cin * h * w, seed: 31), weight = random(cout * cin * 9, seed: 32), bias = random(cout, seed: 33)
            let input = FeatureMap(nchw: x, count: 3, channels: cin, height: h, width: w)
            let expected = referenceConvolution(x, n: 3, cin: cin, h: h, w: w, weight: weight, bias: bias, cout: cout, k: 3, padding: 1)
            let directWeights = ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, kernel: 3,
                                                   precision: .bf16)
            let direct = relativeError(Convolution.apply(input, directWeights, padding: 1).nchw, expected)
            for (tile, bound) in [(2, 4.0), (4, 25.0)] {
                let weights = WinogradWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, tile: tile,
                                              precision: .bf16)
                let relative = relativeError(Winograd.apply(input, weights).nchw, expected)
                let name = "F(\(tile)) bf16 \(cin)→\(cout) \(h)×\(w): relative RMS error \(relative), direct bf16 \(direct)"
                print(name)
                XCTAssertLessThan(relative, bound * direct, name)
                XCTAssertGreaterThan(relative, 1e-5, "\(name): as exact as fp32")
            }
        }
    }

    func testBF16WinogradResultsDoNotDependOnTheBatch() {
        // 9 images share chunks of tiles (the last one partial); alone, each is one chunk.
        let cin = 64, cout = 64, size = 14, count = 9
        let x = random(count * cin * size * size, seed: 34), weight = random(cout * cin * 9, seed: 35)
        let batch = FeatureMap(nchw: x, count: count, channels: cin, height: size, width: size)
        let filters = WinogradWeights(pytorch: weight, bias: nil, outputChannels: cout, inputChannels: cin, tile: 4, precision: .bf16)
        let together = Winograd.apply(batch, filters).values
        let per = size * size * cout
        for i in 0..<count {
            XCTAssertEqual(Winograd.apply(batch.slice(i..<(i + 1)), filters).values, Array(together[(i * per)..<((i + 1) * per)]), "image \(i)")
        }
    }

    func testBF16ResultsDoNotDependOnTheBatch() {
        // An image's output must not depend on which images share its batch (SamplerDeterminismTests).
        let cin = 64, cout = 64, size = 14, count = 9
        let x = random(count * cin * size * size, seed: 27), weight = random(cout * cin * 9, seed: 28)
        let batch = FeatureMap(nchw: x, count: count, channels: cin, height: size, width: size)
        let filters = ConvolutionWeights(pytorch: weight, bias: nil, outputChannels: cout, inputChannels: cin, kernel: 3, precision: .bf16)
        let pointwise = ConvolutionWeights(pytorch: Array(weight[0..<(cout * cin)]), bias: nil, outputChannels: cout, inputChannels: cin,
                                           kernel: 1, precision: .bf16)
        let together = (Convolution.apply(batch, filters, padding: 1).values, Convolution.apply(batch, pointwise, padding: 0).values)
        let per = size * size * cout
        for i in [0, 4, 8] {
            let alone = batch.slice(i..<(i + 1))
            XCTAssertEqual(Convolution.apply(alone, filters, padding: 1).values, Array(together.0[(i * per)..<((i + 1) * per)]), "3×3, image \(i)")
            XCTAssertEqual(Convolution.apply(alone, pointwise, padding: 0).values, Array(together.1[(i * per)..<((i + 1) * per)]),
                           "1×1, image \(i)")
        }
    }
}

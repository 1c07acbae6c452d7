import CSMNumerics
import Foundation
import XCTest

/// The bf16 products of `--precision bf16` against float64 references on bf16-rounded
/// inputs, and their independence of the batch.
extension KernelReferenceTests {
    func testBF16RoundsToNearestEven() {
        // 1 + 2⁻⁸ lies halfway between bf16 neighbours 1 and 1 + 2⁻⁷: ties go to the even one, 1.
        // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: to the even one, 1 + 2⁻⁶.
        let values: [Float] = [1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -2.5, .infinity, 0x1p-130]
        // Subnormals become zero (the AVX512-BF16 conversion's rule, kept by the scalar path).
        let expected: [Float] = [1, 1, 1 + 0x1p-6, 1 + 0x1p-7, -2.5, .infinity, 0]
        // More than 16 values, so that both the vector path and the remainder are used.
        let many = Array(repeating: values, count: 5).flatMap { $0 }
        XCTAssertEqual(BFloat16Matrices.rounded(many), Array(repeating: expected, count: 5).flatMap { $0 })
        XCTAssertTrue(BFloat16Matrices.rounded([.nan])[0].isNaN)
    }

    func testBF16ConvolutionMatchesReferenceOnRoundedInputs() {
        // im2col (k 3, channels below and above 16), 1×1, and a stride.
        for (cin, cout, k, padding, size) in [(3, 5, 3, 1, 7), (20, 33, 3, 1, 6), (48, 64, 1, 0, 5), (17, 9, 3, 0, 5)] {
            let x = random(2 * cin * size * size, seed: 21), weight = random(cout * cin * k * k, seed: 22), bias = random(cout, seed: 23)
            let got = Convolution.apply(FeatureMap(nchw: x, count: 2, channels: cin, height: size, width: size),
                                        ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin,
                                                           kernel: k, precision: .bf16),
                                        padding: padding).nchw
            let expected = referenceConvolution(BFloat16Matrices.rounded(x), n: 2, cin: cin, h: size, w: size,
                                                weight: BFloat16Matrices.rounded(weight), bias: bias, cout: cout, k: k, padding: padding)
            assertClose(got, expected, tolerance: 1e-5 * Float(cin * k * k), "bf16 cin \(cin) cout \(cout) k \(k)")
        }
    }

    func testBF16WinogradIsCloseToTheConvolution() {
        // Winograd rounds its transformed inputs and weights, so the reference is the exact
        // convolution and the bound is bf16's (2⁻⁸ relative per value) amplified by the
        // transforms: measured rms error 0.4 % of the output's rms for F(2×2), 2.0–2.5 % for
        // F(4×4). A wrong layout or a lost tile would be off by the output's scale itself.
        for (cin, cout, h, w) in [(16, 16, 8, 8), (32, 48, 7, 9), (64, 64, 14, 14), (24, 40, 5, 6)] {
            let x = random(3 * cin * h * w, seed: 24), weight = random(cout * cin * 9, seed: 25), bias = random(cout, seed: 26)
            let expected = referenceConvolution(x, n: 3, cin: cin, h: h, w: w, weight: weight, bias: bias, cout: cout, k: 3, padding: 1)
            let scale = (expected.map { $0 * $0 }.reduce(0, +) / Float(expected.count)).squareRoot()
            for tile in [2, 4] {
                let got = Winograd.apply(FeatureMap(nchw: x, count: 3, channels: cin, height: h, width: w),
                                         WinogradWeights(pytorch: weight, bias: bias, outputChannels: cout, inputChannels: cin, tile: tile,
                                                         precision: .bf16)).nchw
                var squared: Float = 0
                for i in 0..<got.count { squared += (got[i] - expected[i]) * (got[i] - expected[i]) }
                let rms = (squared / Float(got.count)).squareRoot()
                XCTAssertLessThan(rms, (tile == 2 ? 0.01 : 0.035) * scale, "F(\(tile)) cin \(cin) cout \(cout) \(h)x\(w): rms error \(rms), output rms \(scale)")
                XCTAssertGreaterThan(rms, 0, "bf16 is not exact; zero error means fp32 ran")
            }
        }
    }

    func testBF16ResultsDoNotDependOnTheBatch() {
        // An image's output must not depend on which images share its batch (SamplerDeterminismTests).
        let cin = 64, cout = 64, size = 14, count = 9
        let x = random(count * cin * size * size, seed: 27), weight = random(cout * cin * 9, seed: 28)
        let batch = FeatureMap(nchw: x, count: count, channels: cin, height: size, width: size)
        let winograd = WinogradWeights(pytorch: weight, bias: nil, outputChannels: cout, inputChannels: cin, tile: 4, precision: .bf16)
        let pointwise = ConvolutionWeights(pytorch: Array(weight[0..<(cout * cin)]), bias: nil, outputChannels: cout, inputChannels: cin,
                                           kernel: 1, precision: .bf16)
        let together = (Winograd.apply(batch, winograd).values, Convolution.apply(batch, pointwise, padding: 0).values)
        let per = size * size * cout
        for i in [0, 4, 8] {
            let alone = batch.slice(i..<(i + 1))
            XCTAssertEqual(Winograd.apply(alone, winograd).values, Array(together.0[(i * per)..<((i + 1) * per)]), "Winograd, image \(i)")
            XCTAssertEqual(Convolution.apply(alone, pointwise, padding: 0).values, Array(together.1[(i * per)..<((i + 1) * per)]),
                           "1×1, image \(i)")
        }
    }
}

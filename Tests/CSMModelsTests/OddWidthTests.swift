import CSMFormats
import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// Networks whose channel counts are not multiples of 16 (the SIMD width of csm's kernels)
/// against PyTorch, from the fixtures of tools/fixtures/make_odd_width_fixtures.py: ResNet classifiers
/// with every block and stem, 1- and 3-channel input, and EDM's SongUNet (DDPM++, NCSN++) and
/// DhariwalUNet with 24-, 40-, 48-, 72- and 80-channel layers.
final class OddWidthTests: XCTestCase {
    /// Per row of `width` values: max|got − expected| ≤ 1e-4·(1 + max|expected|).
    func assertClose(_ got: [Float], _ expected: [Float], width: Int, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        guard got.count == expected.count, width > 0 else { return }
        var worstRatio: Float = 0
        for row in 0..<(got.count / width) {
            var worst: Float = 0, largest: Float = 0
            for j in (row * width)..<((row + 1) * width) {
                worst = max(worst, abs(got[j] - expected[j]))
                largest = max(largest, abs(expected[j]))
            }
            XCTAssertLessThanOrEqual(worst, 1e-4 * (1 + largest), "\(label) row \(row)", file: file, line: line)
            worstRatio = max(worstRatio, worst / (1e-4 * (1 + largest)))
        }
        print("\(label): worst error is \(worstRatio) of the tolerance")
    }

    // MARK: ResNet classifiers

    /// The fixture's images (NCHW uint8 → HWC as shards store them), labels, and the classifier.
    func checkResNet(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try ResNetClassifier(path: fixture("odd/\(name).safetensors"))
        let reference = try SafeTensorsFile(path: fixture("odd/\(name).forward.safetensors"))
        let shape = try reference.shape(of: "pixels_u8")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        XCTAssertEqual([c, h, w], [model.inputChannels, model.inputHeight, model.inputWidth], file: file, line: line)
        let nchw = try reference.integers("pixels_u8")
        var pixels = [UInt8](repeating: 0, count: nchw.count)
        for b in 0..<n { for ch in 0..<c { for p in 0..<(h * w) {
            pixels[(b * h * w + p) * c + ch] = UInt8(nchw[(b * c + ch) * h * w + p])
        } } }
        let f = model.featureDimension, k = model.numClasses
        let (features, logits) = model.forward(pixels: pixels, count: n)
        assertClose(features, try reference.floats("features", shape: [n, f]), width: f, "\(name) features", file: file, line: line)
        assertClose(logits, try reference.floats("logits", shape: [n, k]), width: k, "\(name) logits", file: file, line: line)

        // Class prototypes: the mean features of each label's images.
        let labels = try reference.integers("labels")
        var sums = [Double](repeating: 0, count: k * f), counts = [Double](repeating: 0, count: k)
        for (i, label) in labels.enumerated() {
            counts[label] += 1
            for j in 0..<f { sums[label * f + j] += Double(features[i * f + j]) }
        }
        let prototypes = (0..<(k * f)).map { Float(sums[$0] / max(1, counts[$0 / f])) }
        XCTAssertEqual(counts.map { Float($0) }, try reference.floats("counts"), file: file, line: line)
        assertClose(prototypes, try reference.floats("prototypes", shape: [k, f]), width: f, "\(name) prototypes", file: file, line: line)
    }

    /// Basic blocks, CIFAR stem, widths [24, 48, 40], 1-channel 28×28 (Fashion-MNIST's shape).
    func testBasicCIFARStemWidths24_48_40() throws { try checkResNet("resnet-basic-cifar-24-48-40") }
    /// Bottleneck blocks, ImageNet stem, widths [8, 24], 3-channel 32×32.
    func testBottleneckImageNetStemWidths8_24() throws { try checkResNet("resnet-bottleneck-imagenet-8-24") }
    /// Basic blocks, ImageNet stem, widths [8, 40], 3-channel 32×32.
    func testBasicImageNetStemWidths8_40() throws { try checkResNet("resnet-basic-imagenet-8-40") }
    /// Bottleneck blocks, CIFAR stem, widths [24, 8], 3-channel 32×32.
    func testBottleneckCIFARStemWidths24_8() throws { try checkResNet("resnet-bottleneck-cifar-24-8") }

    // MARK: EDM networks

    /// Writes the model file of an EDM fixture: its `edm` metadata and the generated weights
    /// its `parameters` list describes (see `GeneratedWeights`).
    func writeEDMModel(_ reference: SafeTensorsFile, to path: String) throws {
        let edm = try XCTUnwrap(reference.metadata["edm"])
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(reference.metadata["parameters"]).utf8)) as? [[Any]])
        var items: [SafeTensorsWriter.Item] = []
        for entry in list {
            let name = try XCTUnwrap(entry[0] as? String), shape = try XCTUnwrap(entry[1] as? [Int])
            let exponent = try XCTUnwrap(entry[2] as? Int), offset = try XCTUnwrap(entry[3] as? Double)
            let absolute = try XCTUnwrap(entry[4] as? Bool)
            let values = GeneratedWeights.values(name: name, count: shape.reduce(1, *), exponent: exponent, offset: Float(offset),
                                                 absolute: absolute)
            items.append(.init(name: name, shape: shape, values: values))
        }
        try SafeTensorsWriter.write(items, metadata: ["format": "edm-diffusion/1", "edm": edm], to: path)
    }

    func checkEDM(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = try SafeTensorsFile(path: fixture("odd/\(name).denoise.safetensors"))
        let path = NSTemporaryDirectory() + "csm-odd-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeEDMModel(reference, to: path)
        let model = try EDMModel(path: path)
        let shape = try reference.shape(of: "x")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let x = FeatureMap(nchw: try reference.floats("x"), count: n, channels: c, height: h, width: w)
        let denoised = model.denoise(x, sigma: try reference.floats("sigma"), classLabels: try reference.floats("class_labels"))
        assertClose(denoised.nchw, try reference.floats("denoised"), width: c * h * w, "\(name) D(x; σ)", file: file, line: line)
    }

    /// VP, DDPM++ (positional embedding, standard encoder/decoder), channels 24 and 48.
    func testSongUNetDDPMppChannels24() throws { try checkEDM("songunet-vp-24") }
    /// VE, NCSN++ (Fourier embedding, residual encoder with fused down-convolutions, skip
    /// decoder, [1, 3, 3, 1] filter), channels 24.
    func testSongUNetNCSNppChannels24() throws { try checkEDM("songunet-ncsnpp-ve-24") }
    /// EDM preconditioning, ADM (adaptive scale, one 80-channel attention head), channels 40 and 80.
    func testDhariwalUNetChannels40_80() throws { try checkEDM("dhariwal-edm-40-80") }

    /// Channel counts that EDM's group norms cannot split (PyTorch refuses them too): a decoder
    /// block of 72 + 72 channels gets min(32, 144 / 4) = 32 groups.
    func testGroupNormChannelsNotDivisibleIntoGroupsAreRejected() throws {
        let edm = #"{"class_name": "EDMPrecond", "init_kwargs": {"img_resolution": 8, "img_channels": 3, "label_dim": 4, "model_type": "DhariwalUNet", "model_channels": 24, "channel_mult": [1, 3], "num_blocks": 1, "attn_resolutions": [4]}}"#
        XCTAssertThrowsError(try EDMModel.parameterShapes(try EDMConfiguration(json: edm, path: "model.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("144 channels, not divisible into EDM's 32 groups"), "\(error)")
        }
    }

    /// The generator agrees with tools/fixtures/make_odd_width_fixtures.py (values printed by its `draws`).
    func testGeneratedWeightsMatchThePythonGenerator() {
        XCTAssertEqual(GeneratedWeights.fnv1a64("model.map_layer0.weight"), 0x96BC_79CB_F687_E79A)
        XCTAssertEqual(GeneratedWeights.values(name: "a", count: 3, exponent: 0, offset: 0, absolute: false),
                       [-0.5056227445602417, 0.3491157293319702, -0.9782135486602783])
    }
}

/// The test weights of tools/fixtures/make_odd_width_fixtures.py, a pure function of the tensor name:
/// value = offset + (|u| if absolute, else u)·2^exponent, u the draws of a 64-bit LCG seeded
/// with FNV-1a(name), each the top 24 bits of the state as a signed integer over 2^23 (exact
/// in float32, so both sides agree bit for bit).
enum GeneratedWeights {
    static func fnv1a64(_ text: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return h
    }

    static func values(name: String, count: Int, exponent: Int, offset: Float, absolute: Bool) -> [Float] {
        var state = fnv1a64(name)
        let scale = Float(sign: .plus, exponent: exponent, significand: 1)
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
            return offset + (absolute ? abs(u) : u) * scale
        }
    }
}

import CSMFormats
import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// Path of a file under the package's Datasets folder.
private func dataset(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Datasets").appendingPathComponent(name).path
}

/// The ResNet classifier runtime: the default Fashion-MNIST ResNet-20 against PyTorch's
/// features and logits, a bottleneck network with the ImageNet stem against a slow direct
/// implementation, and malformed files.
final class ResNetClassifierTests: XCTestCase {
    static let modelPath = dataset("fashion-mnist/fashion-mnist-resnet20.safetensors")
    static let referencePath = fixture("resnet/fashion-mnist-resnet20.forward.safetensors")

    /// max|got − expected| ≤ 1e-4·(1 + max|expected|) per row of `width` values.
    func assertClose(_ got: [Float], _ expected: [Float], width: Int, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        guard got.count == expected.count, width > 0 else { return }
        for row in 0..<(got.count / width) {
            var worst: Float = 0, largest: Float = 0
            for j in (row * width)..<((row + 1) * width) {
                worst = max(worst, abs(got[j] - expected[j]))
                largest = max(largest, abs(expected[j]))
            }
            XCTAssertLessThanOrEqual(worst, 1e-4 * (1 + largest), "\(label) row \(row)", file: file, line: line)
        }
    }

    func argmax(_ values: [Float], width: Int) -> [Int] {
        (0..<(values.count / width)).map { row in
            let slice = values[(row * width)..<((row + 1) * width)]
            return slice.indices.max { slice[$0] < slice[$1] }! - row * width
        }
    }

    // MARK: The default classifier against PyTorch

    func testFashionMNISTResNet20MatchesReference() throws {
        let model = try ResNetClassifier(path: Self.modelPath)
        XCTAssertEqual(model.numClasses, 10)
        XCTAssertEqual(model.featureDimension, 64)
        XCTAssertEqual([model.inputHeight, model.inputWidth, model.inputChannels], [28, 28, 1])
        XCTAssertEqual(model.classNames.count, 10)
        XCTAssertEqual(model.classNames[9], "Ankle boot")

        let reference = try SafeTensorsFile(path: Self.referencePath)
        let shape = try reference.shape(of: "pixels_u8")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        XCTAssertEqual([c, h, w], [1, 28, 28])
        // NCHW as PyTorch stores it → HWC as shards store it.
        let nchw = try reference.integers("pixels_u8")
        var pixels = [UInt8](repeating: 0, count: nchw.count)
        for b in 0..<n { for ch in 0..<c { for p in 0..<(h * w) {
            pixels[(b * h * w + p) * c + ch] = UInt8(nchw[(b * c + ch) * h * w + p])
        } } }

        // Normalisation agrees with the reference inputs.
        let normalized = model.normalize(pixels: pixels, count: n)
        assertClose(normalized.nchw, try reference.floats("inputs"), width: c * h * w, "inputs")

        let expectedFeatures = try reference.floats("features", shape: [n, 64])
        let expectedLogits = try reference.floats("logits", shape: [n, 10])
        let (features, logits) = model.forward(pixels: pixels, count: n)
        assertClose(features, expectedFeatures, width: 64, "features")
        assertClose(logits, expectedLogits, width: 10, "logits")

        // The same through the normalised entry point, from PyTorch's own inputs.
        let fromInputs = model.forward(normalized: FeatureMap(nchw: try reference.floats("inputs"), count: n, channels: c, height: h, width: w))
        assertClose(fromInputs.features, expectedFeatures, width: 64, "features from inputs")
        assertClose(fromInputs.logits, expectedLogits, width: 10, "logits from inputs")

        let labels = try reference.integers("labels")
        let predicted = argmax(logits, width: 10)
        XCTAssertEqual(predicted, argmax(expectedLogits, width: 10), "top-1 classes differ from PyTorch's")
        let correct = zip(predicted, labels).filter { $0 == $1 }.count
        print("resnet20 on \(n) Fashion-MNIST test images: accuracy \(correct)/\(n) = \(String(format: "%.3f", Double(correct) / Double(n)))")
        XCTAssertGreaterThanOrEqual(Double(correct) / Double(n), 0.8)
    }

    func testBatchOfOneAndEmptyBatch() throws {
        let model = try ResNetClassifier(path: Self.modelPath)
        let reference = try SafeTensorsFile(path: Self.referencePath)
        let pixels = try reference.integers("pixels_u8").prefix(28 * 28).map { UInt8($0) }
        let one = model.forward(pixels: pixels, count: 1)
        assertClose(one.logits, Array(try reference.floats("logits").prefix(10)), width: 10, "first image alone")
        let none = model.forward(pixels: [], count: 0)
        XCTAssertEqual(none.features.count, 0)
        XCTAssertEqual(none.logits.count, 0)
    }

    // MARK: Bottleneck blocks and the ImageNet stem against a direct implementation

    /// Deterministic pseudo-random values in [-1, 1).
    func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
    }

    /// An NCHW batch.
    struct Tensor {
        var values: [Float]
        var n: Int, c: Int, h: Int, w: Int
    }

    /// Direct convolution (no bias), PyTorch semantics.
    func conv(_ x: Tensor, _ weight: [Float], cout: Int, k: Int, stride: Int, padding: Int) -> Tensor {
        let oh = (x.h + 2 * padding - k) / stride + 1, ow = (x.w + 2 * padding - k) / stride + 1
        var y = Tensor(values: [Float](repeating: 0, count: x.n * cout * oh * ow), n: x.n, c: cout, h: oh, w: ow)
        for b in 0..<x.n { for co in 0..<cout { for oy in 0..<oh { for ox in 0..<ow {
            var sum = 0.0
            for ci in 0..<x.c { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                if iy >= 0 && iy < x.h && ix >= 0 && ix < x.w {
                    sum += Double(x.values[((b * x.c + ci) * x.h + iy) * x.w + ix]) * Double(weight[((co * x.c + ci) * k + ky) * k + kx])
                }
            } } }
            y.values[((b * cout + co) * oh + oy) * ow + ox] = Float(sum)
        } } } }
        return y
    }

    /// Eval-mode BatchNorm, eps 1e-5, from the stored tensors of `name`.
    func batchNorm(_ x: Tensor, _ tensors: [String: [Float]], _ name: String) -> Tensor {
        var y = x
        let gamma = tensors["\(name).weight"]!, beta = tensors["\(name).bias"]!
        let mean = tensors["\(name).running_mean"]!, variance = tensors["\(name).running_var"]!
        for b in 0..<x.n { for ch in 0..<x.c { for p in 0..<(x.h * x.w) {
            let i = (b * x.c + ch) * x.h * x.w + p
            y.values[i] = (x.values[i] - mean[ch]) / (variance[ch] + 1e-5).squareRoot() * gamma[ch] + beta[ch]
        } } }
        return y
    }

    func relu(_ x: Tensor) -> Tensor {
        var y = x
        y.values = x.values.map { max(0, $0) }
        return y
    }

    func maxPool(_ x: Tensor) -> Tensor {
        let oh = (x.h + 2 - 3) / 2 + 1, ow = (x.w + 2 - 3) / 2 + 1
        var y = Tensor(values: [Float](repeating: 0, count: x.n * x.c * oh * ow), n: x.n, c: x.c, h: oh, w: ow)
        for b in 0..<x.n { for ch in 0..<x.c { for oy in 0..<oh { for ox in 0..<ow {
            var best = -Float.infinity
            for ky in 0..<3 { for kx in 0..<3 {
                let iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx
                if iy >= 0 && iy < x.h && ix >= 0 && ix < x.w { best = max(best, x.values[((b * x.c + ch) * x.h + iy) * x.w + ix]) }
            } }
            y.values[((b * x.c + ch) * oh + oy) * ow + ox] = best
        } } } }
        return y
    }

    /// A torchvision-named bottleneck ResNet with the ImageNet stem: layers [2, 1],
    /// widths [4, 8], 3 input channels, 5 classes, 13×12 images. Returns its tensors and
    /// the order to write them in.
    func bottleneckNetwork() -> (tensors: [String: [Float]], shapes: [(String, [Int])]) {
        var tensors: [String: [Float]] = [:]
        var shapes: [(String, [Int])] = []
        var seed: UInt64 = 100
        func add(_ name: String, _ shape: [Int], positive: Bool = false, scale: Float = 1) {
            seed += 1
            var values = random(shape.reduce(1, *), seed: seed).map { $0 * scale }
            if positive { values = values.map { 0.5 + abs($0) } }
            tensors[name] = values
            shapes.append((name, shape))
        }
        func convBN(_ conv: String, _ bn: String, _ cin: Int, _ cout: Int, _ k: Int) {
            add("\(conv).weight", [cout, cin, k, k], scale: 1 / Float(cin * k * k).squareRoot())
            add("\(bn).weight", [cout])
            add("\(bn).bias", [cout])
            add("\(bn).running_mean", [cout], scale: 0.1)
            add("\(bn).running_var", [cout], positive: true)
            add("\(bn).num_batches_tracked", [])
        }
        convBN("conv1", "bn1", 3, 4, 7)
        var inplanes = 4
        for (stage, (blocks, planes)) in zip([2, 1], [4, 8]).enumerated() {
            for index in 0..<blocks {
                let name = "layer\(stage + 1).\(index)"
                convBN("\(name).conv1", "\(name).bn1", inplanes, planes, 1)
                convBN("\(name).conv2", "\(name).bn2", planes, planes, 3)
                convBN("\(name).conv3", "\(name).bn3", planes, planes * 4, 1)
                if index == 0 { convBN("\(name).downsample.0", "\(name).downsample.1", inplanes, planes * 4, 1) }
                inplanes = planes * 4
            }
        }
        add("fc.weight", [5, 32], scale: 0.2)
        add("fc.bias", [5])
        return (tensors, shapes)
    }

    func referenceForward(_ t: [String: [Float]], _ input: Tensor) -> (features: [Float], logits: [Float]) {
        var x = maxPool(relu(batchNorm(conv(input, t["conv1.weight"]!, cout: 4, k: 7, stride: 2, padding: 3), t, "bn1")))
        for (stage, (blocks, planes)) in zip([2, 1], [4, 8]).enumerated() {
            for index in 0..<blocks {
                let name = "layer\(stage + 1).\(index)"
                let stride = stage > 0 && index == 0 ? 2 : 1
                var h = relu(batchNorm(conv(x, t["\(name).conv1.weight"]!, cout: planes, k: 1, stride: 1, padding: 0), t, "\(name).bn1"))
                h = relu(batchNorm(conv(h, t["\(name).conv2.weight"]!, cout: planes, k: 3, stride: stride, padding: 1), t, "\(name).bn2"))
                h = batchNorm(conv(h, t["\(name).conv3.weight"]!, cout: planes * 4, k: 1, stride: 1, padding: 0), t, "\(name).bn3")
                let shortcut = index == 0
                    ? batchNorm(conv(x, t["\(name).downsample.0.weight"]!, cout: planes * 4, k: 1, stride: stride, padding: 0), t, "\(name).downsample.1")
                    : x
                for i in h.values.indices { h.values[i] = max(0, h.values[i] + shortcut.values[i]) }
                x = h
            }
        }
        var features = [Float](repeating: 0, count: x.n * x.c)
        for b in 0..<x.n { for ch in 0..<x.c {
            var sum: Float = 0
            for p in 0..<(x.h * x.w) { sum += x.values[(b * x.c + ch) * x.h * x.w + p] }
            features[b * x.c + ch] = sum / Float(x.h * x.w)
        } }
        let weight = t["fc.weight"]!, bias = t["fc.bias"]!
        var logits = [Float](repeating: 0, count: x.n * 5)
        for b in 0..<x.n { for k in 0..<5 {
            var sum = bias[k]
            for j in 0..<x.c { sum += weight[k * x.c + j] * features[b * x.c + j] }
            logits[b * 5 + k] = sum
        } }
        return (features, logits)
    }

    func testBottleneckImageNetStemMatchesDirectImplementation() throws {
        let (tensors, shapes) = bottleneckNetwork()
        let metadata = [
            "format": "resnet-classifier/1",
            "resnet": #"{"block": "bottleneck", "layers": [2, 1], "widths": [4, 8], "stem": "imagenet", "in_channels": 3, "num_classes": 5}"#,
            "input": #"{"height": 13, "width": 12, "channels": 3, "scale": 0.00392156862745098, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}"#,
            "class_names": #"["a", "b", "c", "d", "e"]"#,
        ]
        let path = NSTemporaryDirectory() + "csm-resnet-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensorsWriter.write(shapes.map { SafeTensorsWriter.Item(name: $0.0, shape: $0.1, values: tensors[$0.0]!) },
                                    metadata: metadata, to: path)
        let model = try ResNetClassifier(path: path)
        XCTAssertEqual(model.featureDimension, 32)
        XCTAssertEqual(model.numClasses, 5)
        XCTAssertEqual(model.classNames, ["a", "b", "c", "d", "e"])

        let n = 3, h = 13, w = 12, c = 3
        var state: UInt64 = 7
        let pixels: [UInt8] = (0..<(n * h * w * c)).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 40)
        }
        var nchw = [Float](repeating: 0, count: pixels.count)
        let mean: [Float] = [0.5, 0.4, 0.3], std: [Float] = [0.2, 0.25, 0.3]
        for b in 0..<n { for p in 0..<(h * w) { for ch in 0..<c {
            nchw[(b * c + ch) * h * w + p] = (Float(pixels[(b * h * w + p) * c + ch]) * Float(0.00392156862745098) - mean[ch]) / std[ch]
        } } }
        let expected = referenceForward(tensors, Tensor(values: nchw, n: n, c: c, h: h, w: w))
        let got = model.forward(pixels: pixels, count: n)
        assertClose(got.features, expected.features, width: 32, "features")
        assertClose(got.logits, expected.logits, width: 5, "logits")
    }

    // MARK: Malformed files

    static let original = [UInt8](FileManager.default.contents(atPath: modelPath) ?? Data())

    /// The header JSON of the default classifier and the data that follows it.
    func parts() throws -> (header: [String: Any], data: [UInt8]) {
        let bytes = Self.original
        XCTAssertGreaterThan(bytes.count, 8)
        var length = 0
        for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
        return (header, Array(bytes[(8 + length)...]))
    }

    func assemble(_ header: [String: Any], _ data: [UInt8]) throws -> [UInt8] {
        let json = [UInt8](try JSONSerialization.data(withJSONObject: header))
        var out: [UInt8] = []
        var length = UInt64(json.count)
        for _ in 0..<8 { out.append(UInt8(length & 0xff)); length >>= 8 }
        return out + json + data
    }

    /// The default classifier's file with metadata `key` replaced (nil: removed).
    func withMetadata(_ key: String, _ value: String?) throws -> [UInt8] {
        var (header, data) = try parts()
        var metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        metadata[key] = value
        header["__metadata__"] = metadata
        return try assemble(header, data)
    }

    func load(_ bytes: [UInt8]) throws -> ResNetClassifier {
        let path = NSTemporaryDirectory() + "csm-resnet-\(UUID().uuidString).safetensors"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try ResNetClassifier(path: path)
    }

    func assertRejected(_ bytes: [UInt8], mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        assertModelFileRejected(bytes, mentions: mentions, load: { _ = try ResNetClassifier(path: $0) }, file: file, line: line)
    }

    func testUnmodifiedCopyLoads() throws {
        let (header, data) = try parts()
        XCTAssertEqual(try load(try assemble(header, data)).featureDimension, 64)
    }

    func testWrongFormat() throws {
        assertRejected(try withMetadata("format", "edm-diffusion/1"), mentions: "expected resnet-classifier/1")
        assertRejected(try withMetadata("format", nil), mentions: "no 'format'")
    }

    func testMissingTensor() throws {
        var (header, data) = try parts()
        header.removeValue(forKey: "layer2.1.bn2.running_var")
        assertRejected(try assemble(header, data), mentions: "missing tensor 'layer2.1.bn2.running_var'")
    }

    func testShapeDisagreesWithArchitecture() throws {
        let resnet = #"{"block": "basic", "layers": [3, 3, 3], "widths": [16, 32, 128], "stem": "cifar", "in_channels": 1, "num_classes": 10}"#
        assertRejected(try withMetadata("resnet", resnet), mentions: "architecture in the metadata needs")
        let bottleneck = #"{"block": "bottleneck", "layers": [3, 3, 3], "widths": [16, 32, 64], "stem": "cifar", "in_channels": 1, "num_classes": 10}"#
        assertRejected(try withMetadata("resnet", bottleneck), mentions: "layer1.0.conv1.weight")
        let imagenet = #"{"block": "basic", "layers": [3, 3, 3], "widths": [16, 32, 64], "stem": "imagenet", "in_channels": 1, "num_classes": 10}"#
        assertRejected(try withMetadata("resnet", imagenet), mentions: "tensor 'conv1.weight' has shape")
    }

    func testLeftoverTensor() throws {
        let resnet = #"{"block": "basic", "layers": [3, 3, 2], "widths": [16, 32, 64], "stem": "cifar", "in_channels": 1, "num_classes": 10}"#
        assertRejected(try withMetadata("resnet", resnet), mentions: "unexpected tensor 'layer3.2.")
        var (header, data) = try parts()
        header["conv1.bias"] = ["dtype": "F32", "shape": [16], "data_offsets": [data.count, data.count + 64]]
        data += [UInt8](repeating: 0, count: 64)
        assertRejected(try assemble(header, data), mentions: "unexpected tensor 'conv1.bias'")
    }

    func testBadMetadataJSON() throws {
        assertRejected(try withMetadata("resnet", #"{"block": "basic", "#), mentions: "metadata 'resnet'")
        assertRejected(try withMetadata("resnet", nil), mentions: "no 'resnet'")
        let badBlock = #"{"block": "wide", "layers": [3, 3, 3], "widths": [16, 32, 64], "stem": "cifar", "in_channels": 1, "num_classes": 10}"#
        assertRejected(try withMetadata("resnet", badBlock), mentions: "'block'")
        let mismatched = #"{"block": "basic", "layers": [3, 3], "widths": [16, 32, 64], "stem": "cifar", "in_channels": 1, "num_classes": 10}"#
        assertRejected(try withMetadata("resnet", mismatched), mentions: "'layers' has 2 stages")
        assertRejected(try withMetadata("input", "[1, 2]"), mentions: "metadata 'input'")
        let twoMeans = #"{"height": 28, "width": 28, "channels": 1, "scale": 0.0039, "mean": [0.2, 0.3], "std": [0.3]}"#
        assertRejected(try withMetadata("input", twoMeans), mentions: "one value per channel")
        let zeroStd = #"{"height": 28, "width": 28, "channels": 1, "scale": 0.0039, "mean": [0.2], "std": [0]}"#
        assertRejected(try withMetadata("input", zeroStd), mentions: "'std' values must be positive")
        let threeChannels = #"{"height": 28, "width": 28, "channels": 3, "scale": 0.0039, "mean": [0.2, 0.2, 0.2], "std": [0.3, 0.3, 0.3]}"#
        assertRejected(try withMetadata("input", threeChannels), mentions: "in_channels is 1")
        assertRejected(try withMetadata("class_names", #"["a", "b"]"#), mentions: "has 2 names but num_classes is 10")
        assertRejected(try withMetadata("class_names", "not json"), mentions: "metadata 'class_names'")
    }

    func testTruncatedFile() {
        assertRejected(Array(Self.original.prefix(Self.original.count - 100)), mentions: "past the end")
    }

    /// `num_batches_tracked` may be stored as any dtype (PyTorch saves I64) and is ignored.
    func testIntegerNumBatchesTracked() throws {
        var (header, data) = try parts()
        header["bn1.num_batches_tracked"] = ["dtype": "I64", "shape": [], "data_offsets": [data.count, data.count + 8]]
        data += [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(try load(try assemble(header, data)).numClasses, 10)
    }
}

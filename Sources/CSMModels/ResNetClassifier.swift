import CSMFormats
import CSMNumerics
import Foundation

/// The architecture of a `resnet-classifier/1` file (its `resnet` metadata entry;
/// docs/formats/resnet-classifier.md).
public struct ResNetArchitecture: Sendable, Equatable {
    /// torchvision's BasicBlock (two 3×3 convolutions) or Bottleneck (1×1, 3×3, 1×1 with 4× expansion).
    public enum Block: String, Sendable { case basic, bottleneck }
    /// `cifar`: 3×3 conv stride 1, no max-pool; `imagenet`: 7×7 conv stride 2 and a 3×3 max-pool stride 2.
    public enum Stem: String, Sendable { case cifar, imagenet }

    public var block: Block
    /// Blocks per stage.
    public var layers: [Int]
    /// Channels (torchvision's `planes`) per stage; the stem has `widths[0]` outputs.
    public var widths: [Int]
    public var stem: Stem
    public var inputChannels: Int
    public var numClasses: Int

    /// Output channels of a block over `planes`.
    public var expansion: Int { block == .basic ? 1 : 4 }
    /// Length of the feature vector φ (global average pool of the last stage).
    public var featureDimension: Int { (widths.last ?? 0) * expansion }

    public init(block: Block, layers: [Int], widths: [Int], stem: Stem, inputChannels: Int, numClasses: Int) {
        self.block = block
        self.layers = layers
        self.widths = widths
        self.stem = stem
        self.inputChannels = inputChannels
        self.numClasses = numClasses
    }

    /// Parses the `resnet` metadata JSON of `path`.
    public init(json text: String, path: String) throws {
        func fail(_ message: String) -> FileError { FileError(path, "metadata 'resnet': \(message)") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        let known: Set<String> = ["block", "layers", "widths", "stem", "in_channels", "num_classes"]
        if let unknown = object.keys.filter({ !known.contains($0) }).sorted().first {
            throw fail("unknown key '\(unknown)'")
        }
        func positiveInt(_ key: String) throws -> Int {
            guard let number = object[key] as? NSNumber, let value = Int(exactly: number.doubleValue), value > 0 else {
                throw fail("'\(key)' must be a positive integer")
            }
            return value
        }
        func positiveInts(_ key: String) throws -> [Int] {
            guard let list = object[key] as? [NSNumber], !list.isEmpty else { throw fail("'\(key)' must be a non-empty list of positive integers") }
            let values = list.compactMap { Int(exactly: $0.doubleValue) }
            guard values.count == list.count, values.allSatisfy({ $0 > 0 }) else {
                throw fail("'\(key)' must be a non-empty list of positive integers")
            }
            return values
        }
        guard let blockName = object["block"] as? String, let block = Block(rawValue: blockName) else {
            throw fail("'block' must be \"basic\" or \"bottleneck\"")
        }
        guard let stemName = object["stem"] as? String, let stem = Stem(rawValue: stemName) else {
            throw fail("'stem' must be \"cifar\" or \"imagenet\"")
        }
        self.block = block
        self.stem = stem
        layers = try positiveInts("layers")
        widths = try positiveInts("widths")
        inputChannels = try positiveInt("in_channels")
        numClasses = try positiveInt("num_classes")
        guard layers.count == widths.count else {
            throw fail("'layers' has \(layers.count) stages but 'widths' has \(widths.count)")
        }
        guard layers.count <= 16, layers.allSatisfy({ $0 <= 1024 }), widths.allSatisfy({ $0 <= 16384 }),
              inputChannels <= 64, numClasses <= 1_000_000 else {
            throw fail("sizes are implausibly large")
        }
    }
}

/// How stored pixels become network input (the `input` metadata entry):
/// input = (pixel·scale − mean[c]) / std[c].
public struct ResNetInput: Sendable, Equatable {
    public var height: Int
    public var width: Int
    public var channels: Int
    public var scale: Float
    /// One value per channel.
    public var mean: [Float]
    /// One value per channel, all positive.
    public var std: [Float]

    public init(height: Int, width: Int, channels: Int, scale: Float, mean: [Float], std: [Float]) {
        self.height = height
        self.width = width
        self.channels = channels
        self.scale = scale
        self.mean = mean
        self.std = std
    }

    /// Parses the `input` metadata JSON of `path`.
    public init(json text: String, path: String) throws {
        func fail(_ message: String) -> FileError { FileError(path, "metadata 'input': \(message)") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        func positiveInt(_ key: String) throws -> Int {
            guard let number = object[key] as? NSNumber, let value = Int(exactly: number.doubleValue), value > 0, value <= 65536 else {
                throw fail("'\(key)' must be a positive integer")
            }
            return value
        }
        func floats(_ key: String) throws -> [Float] {
            guard let list = object[key] as? [NSNumber], list.allSatisfy({ $0.doubleValue.isFinite }) else {
                throw fail("'\(key)' must be a list of numbers")
            }
            return list.map { $0.floatValue }
        }
        height = try positiveInt("height")
        width = try positiveInt("width")
        channels = try positiveInt("channels")
        guard let scaleNumber = object["scale"] as? NSNumber, scaleNumber.doubleValue.isFinite else {
            throw fail("'scale' must be a number")
        }
        scale = scaleNumber.floatValue
        mean = try floats("mean")
        std = try floats("std")
        guard mean.count == channels, std.count == channels else {
            throw fail("'mean' and 'std' need one value per channel (\(channels))")
        }
        guard std.allSatisfy({ $0 > 0 }) else { throw fail("'std' values must be positive") }
    }
}

/// A trained ResNet classifier read from a `resnet-classifier/1` file (torchvision
/// parameter names, BatchNorm in eval mode folded into the convolutions at load time).
/// It gives the penultimate features φ (global average pool of the last stage) that
/// calibrated reannotation projects onto class prototypes, and the logits fc(φ).
public final class ResNetClassifier: Sendable {
    /// The file the classifier came from.
    public let path: String
    public let architecture: ResNetArchitecture
    public let input: ResNetInput
    /// One name per class.
    public let classNames: [String]
    /// Other metadata (provenance, test accuracy, …).
    public let metadata: [String: String]

    private let stem: ResNetConv
    private let blocks: [ResNetBlock]
    private let fc: LinearWeights

    /// Loads and validates `path`: metadata, every tensor's presence and shape, no leftovers.
    public convenience init(path: String) throws {
        try self.init(file: try SafeTensorsFile(path: path))
    }

    public init(file: SafeTensorsFile) throws {
        path = file.path
        metadata = file.metadata
        try file.requireFormat("resnet-classifier/1")
        guard let resnet = file.metadata["resnet"] else { throw FileError(file.path, "metadata has no 'resnet' entry") }
        guard let inputText = file.metadata["input"] else { throw FileError(file.path, "metadata has no 'input' entry") }
        let architecture = try ResNetArchitecture(json: resnet, path: file.path)
        let input = try ResNetInput(json: inputText, path: file.path)
        guard input.channels == architecture.inputChannels else {
            throw FileError(file.path, "metadata 'input' has \(input.channels) channels but 'resnet' in_channels is \(architecture.inputChannels)")
        }
        guard let names = try file.metadataStrings("class_names", count: architecture.numClasses, countName: "num_classes") else {
            throw FileError(file.path, "metadata has no 'class_names' entry")
        }
        self.architecture = architecture
        self.input = input
        classNames = names

        let reader = WeightReader(file)
        let a = architecture
        stem = try reader.foldedConv(a.stemSpec)
        blocks = try a.blockSpecs.map { spec in
            ResNetBlock(convs: try spec.convs.map(reader.foldedConv), downsample: try spec.downsample.map(reader.foldedConv))
        }
        fc = try reader.linear("fc", inputs: a.featureDimension, outputs: a.numClasses)
        try reader.checkAllUsed()
    }

    /// Number of classes K.
    public var numClasses: Int { architecture.numClasses }
    /// Length F of the feature vector φ.
    public var featureDimension: Int { architecture.featureDimension }
    /// Image height the classifier was trained on.
    public var inputHeight: Int { input.height }
    /// Image width the classifier was trained on.
    public var inputWidth: Int { input.width }
    /// Image channels.
    public var inputChannels: Int { input.channels }

    /// The network input for `count` images of uint8 pixels in HWC order (as stored in
    /// shards): (pixel·scale − mean[c]) / std[c].
    public func normalize(pixels: [UInt8], count: Int) -> FeatureMap {
        let h = inputHeight, w = inputWidth, c = inputChannels
        kernelPrecondition(count >= 0 && pixels.count == count * h * w * c,
                     "ResNetClassifier: \(pixels.count) pixels are not \(count) images of \(h)×\(w)×\(c)")
        var x = FeatureMap(uninitializedCount: count, height: h, width: w, channels: c)
        let mean = input.mean, std = input.std, scale = input.scale
        x.values.withUnsafeMutableBufferPointer { out in
            for i in 0..<(count * h * w) {
                for ch in 0..<c {
                    out[i * c + ch] = (Float(pixels[i * c + ch]) * scale - mean[ch]) / std[ch]
                }
            }
        }
        return x
    }

    /// Features φ [count, F] and logits [count, K] (row-major) of `count` images of uint8
    /// pixels in HWC order. The batch is split across the machine's cores.
    public func forward(pixels: [UInt8], count: Int) -> (features: [Float], logits: [Float]) {
        forward(normalized: normalize(pixels: pixels, count: count))
    }

    /// Features φ [n, F] and logits [n, K] of already normalised images (NHWC). The batch
    /// is split across the machine's cores.
    public func forward(normalized x: FeatureMap) -> (features: [Float], logits: [Float]) {
        kernelPrecondition(x.channels == inputChannels && x.hasConsistentShape, "ResNetClassifier: \(x.channels) input channels, the model expects \(inputChannels)")
        kernelPrecondition(x.height > 0 && x.width > 0, "ResNetClassifier: empty images")
        let parts = Parallel.ranges(x.count)
        var results = [(features: [Float], logits: [Float])](repeating: ([], []), count: parts.count)
        results.withUnsafeMutableBufferPointer { out in
            let slots = out
            Parallel.forEach(parts.count) { p in
                slots[p] = forwardSerial(parts.count == 1 ? x : x.slice(parts[p]))
            }
        }
        return (results.flatMap(\.features), results.flatMap(\.logits))
    }

    private func forwardSerial(_ x: FeatureMap) -> (features: [Float], logits: [Float]) {
        var h = stem(x)
        if architecture.stem == .imagenet { h = MaxPool3x3.forward(h).y }
        for block in blocks { h = block(h) }
        let features = GlobalAveragePool.forward(h)
        return (features, fc.apply(features, rows: x.count))
    }
}

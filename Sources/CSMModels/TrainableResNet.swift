import CSMFormats
import CSMNumerics
import CSMRandom
import Foundation

/// A `resnet-classifier/1` ResNet that can be trained: training-mode forward (batch-norm
/// batch statistics), backward into every parameter's gradient, eval-mode forward, and
/// saving in the format `ResNetClassifier` reads. Parameters keep PyTorch's layouts.
///
/// Batches are split into `BatchChunks` that run concurrently; every reduction over the
/// batch is summed in chunk order, so results are the same on any number of threads.
public final class TrainableResNet {
    public let architecture: ResNetArchitecture
    public let input: ResNetInput
    public let classNames: [String]
    /// Every trainable tensor in state_dict order (conv weight, bn weight, bn bias, …, fc.weight, fc.bias).
    public let parameters: [Parameter]
    /// BN running_mean / running_var tensors (gradient unused), state_dict order.
    public let buffers: [Parameter]
    /// BN num_batches_tracked (the same for every BN layer).
    public var batchesTracked: Int

    private let stem: TrainableConvBN
    private let blocks: [TrainableResidualBlock]
    private let fcWeight: Parameter
    private let fcBias: Parameter

    // What the last training forward kept for backward.
    private var stemOutput: [FeatureMap] = []
    private var poolArgmax: [[Int32]] = []
    private var features: [Float] = []
    private var lastShape: (height: Int, width: Int, channels: Int, chunks: [Range<Int>])?

    /// torchvision's initialisation, deterministic in `seed`: Kaiming normal (fan_out, ReLU
    /// gain) for convolutions, batch-norm weight 1 and bias 0, PyTorch's default Linear
    /// init U(±1/√fan_in) for the classifier's weight and bias.
    public convenience init(architecture: ResNetArchitecture, input: ResNetInput, classNames: [String], seed: UInt64) {
        precondition(input.channels == architecture.inputChannels && classNames.count == architecture.numClasses,
                     "TrainableResNet: input channels or class names disagree with the architecture")
        var random = SplitMix64(state: seed)
        let source = ResNetParameterSource { name, shape in
            let count = shape.reduce(1, *)
            if name.hasSuffix("running_var") { return [Float](repeating: 1, count: count) }
            if name.hasSuffix("running_mean") { return [Float](repeating: 0, count: count) }
            if name == "fc.weight" || name == "fc.bias" {
                let bound = 1 / Double(architecture.featureDimension).squareRoot()
                return (0..<count).map { _ in Float((2 * random.uniform() - 1) * bound) }
            }
            if shape.count == 4 {
                let std = (2 / Double(shape[0] * shape[2] * shape[3])).squareRoot()
                return (0..<count).map { _ in Float(random.normal() * std) }
            }
            // Batch-norm weight 1, bias 0.
            return [Float](repeating: name.hasSuffix(".weight") ? 1 : 0, count: count)
        }
        // The source never throws.
        try! self.init(architecture: architecture, input: input, classNames: classNames, source: source, batchesTracked: 0)
    }

    /// Starts from a `resnet-classifier/1` file: weights and batch-norm running statistics
    /// (num_batches_tracked kept).
    public convenience init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        // The classifier checks the metadata, every tensor's presence and shape, and leftovers.
        let classifier = try ResNetClassifier(file: file)
        let reader = WeightReader(file)
        let source = ResNetParameterSource { name, shape in try reader.tensor(name, shape) }
        var tracked = 0
        if reader.optional("bn1.num_batches_tracked") {
            let entry = try file.entry("bn1.num_batches_tracked")
            let values = entry.dtype.isFloatingPoint ? try file.floats("bn1.num_batches_tracked").map { Int(exactly: $0.rounded()) ?? 0 }
                                                     : try file.integers("bn1.num_batches_tracked")
            tracked = values.first ?? 0
        }
        try self.init(architecture: classifier.architecture, input: classifier.input, classNames: classifier.classNames,
                      source: source, batchesTracked: tracked)
    }

    private init(architecture a: ResNetArchitecture, input: ResNetInput, classNames: [String], source: ResNetParameterSource,
                 batchesTracked: Int) throws {
        architecture = a
        self.input = input
        self.classNames = classNames
        self.batchesTracked = batchesTracked
        stem = try source.convBN(a.stemSpec)
        let blocks = try a.blockSpecs.map { spec in
            TrainableResidualBlock(layers: try spec.convs.map(source.convBN), downsample: try spec.downsample.map(source.convBN))
        }
        self.blocks = blocks
        fcWeight = Parameter(name: "fc.weight", shape: [a.numClasses, a.featureDimension],
                             value: try source.values("fc.weight", [a.numClasses, a.featureDimension]))
        fcBias = Parameter(name: "fc.bias", shape: [a.numClasses], value: try source.values("fc.bias", [a.numClasses]))
        let pairs = [stem] + blocks.flatMap(\.pairs)
        parameters = pairs.flatMap(\.parameters) + [fcWeight, fcBias]
        buffers = pairs.flatMap(\.buffers)
    }

    /// Length F of the feature vector φ.
    public var featureDimension: Int { architecture.featureDimension }
    /// Number of classes K.
    public var numClasses: Int { architecture.numClasses }

    private func checkInput(_ x: FeatureMap) {
        precondition(x.channels == architecture.inputChannels,
                     "TrainableResNet: \(x.channels) input channels, the network expects \(architecture.inputChannels)")
        precondition(x.count > 0 && x.height > 0 && x.width > 0, "TrainableResNet: empty batch")
    }

    /// Training-mode forward of normalised NHWC input: batch statistics (biased variance for
    /// normalising), running statistics updated (momentum 0.1, unbiased variance, eps 1e-5),
    /// batchesTracked += 1. Returns logits [count, K] row-major and keeps what backward needs.
    public func forwardTraining(_ x: FeatureMap) -> [Float] {
        checkInput(x)
        MemoryReuse.enable()
        var h = stem.forwardTraining(ChunkedActivations(BatchChunks.split(x)), relu: true)
        if architecture.stem == .imagenet {
            let stem = h
            let pooled = BatchChunks.map(stem.count) { MaxPool3x3.forward(stem.chunk($0)) }
            stemOutput = stem.all
            poolArgmax = pooled.map(\.argmax)
            h = ChunkedActivations(pooled.map(\.y))
        }
        for block in blocks { h = block.forwardTraining(h) }
        let last = h
        features = BatchChunks.map(last.count) { GlobalAveragePool.forward(last.chunk($0)) }.flatMap { $0 }
        let shape = last.chunk(0)
        lastShape = (shape.height, shape.width, shape.channels, BatchChunks.ranges(x.count))
        batchesTracked += 1
        return classify(features, rows: x.count)
    }

    private func classify(_ features: [Float], rows: Int) -> [Float] {
        LinearWeights(weight: fcWeight.value, bias: fcBias.value, inputs: featureDimension, outputs: numClasses).apply(features, rows: rows)
    }

    /// Adds dLoss/dθ into every parameter's gradient, given dLoss/dlogits [count, K] for the
    /// last forwardTraining.
    public func backward(_ logitsGradient: [Float]) {
        guard let shape = lastShape else { preconditionFailure("TrainableResNet.backward without forwardTraining") }
        let rows = features.count / featureDimension, k = numClasses, f = featureDimension
        precondition(logitsGradient.count == rows * k, "TrainableResNet.backward: \(logitsGradient.count) gradients for \(rows)×\(k) logits")
        let dw = LinearGradient.weight(features, logitsGradient, rows: rows, inputs: f, outputs: k)
        let db = LinearGradient.bias(logitsGradient, rows: rows, outputs: k)
        for i in dw.indices { fcWeight.gradient[i] += dw[i] }
        for i in db.indices { fcBias.gradient[i] += db[i] }
        let dFeatures = LinearGradient.input(logitsGradient, weight: fcWeight.value, rows: rows, inputs: f, outputs: k)
        // Each chunk of a gradient is prepared for the layer that reads it next (masked by its
        // ReLU, its batch-norm sums taken) by the task that computed it, while it is in cache.
        let stemReadsBlocks = architecture.stem != .imagenet
        guard let top = blocks.last else { preconditionFailure("TrainableResNet: no residual blocks") }
        let pooled = BatchChunks.map(shape.chunks.count) { i -> (FeatureMap, TrainableResidualBlock.Sums) in
            var d = GlobalAveragePool.backward(dFeatures, images: shape.chunks[i], height: shape.height, width: shape.width,
                                               channels: shape.channels)
            let sums = top.prepareGradient(&d, chunk: i)
            return (d, sums)
        }
        var d = pooled.map(\.0)
        var sums = pooled.map(\.1)
        var stemSums: [([Double], [Double])] = []
        for index in blocks.indices.reversed() {
            if index > 0 {
                let below = blocks[index - 1]
                (d, sums) = blocks[index].backward(d, sums: sums) { i, dx in below.prepareGradient(&dx, chunk: i) }
            } else if stemReadsBlocks {
                (d, stemSums) = blocks[0].backward(d, sums: sums) { [stem] i, dx in stem.prepareGradient(&dx, chunk: i) }
            } else {
                d = blocks[0].backward(d, sums: sums) { _, _ in () }.dx
            }
        }
        if !stemReadsBlocks {
            let before = stemOutput
            let unpooled = BatchChunks.map(d.count) { i -> (FeatureMap, ([Double], [Double])) in
                var g = MaxPool3x3.backward(d[i], argmax: poolArgmax[i], height: before[i].height, width: before[i].width)
                let sums = stem.prepareGradient(&g, chunk: i)
                return (g, sums)
            }
            d = unpooled.map(\.0)
            stemSums = unpooled.map(\.1)
            stemOutput = []
            poolArgmax = []
        }
        stem.weightGradients(d, sums: stemSums)
        lastShape = nil
        features = []
    }

    /// Eval-mode forward with running statistics: features φ [count, F] and logits [count, K].
    public func forwardInference(_ x: FeatureMap) -> (features: [Float], logits: [Float]) {
        checkInput(x)
        let chunks = BatchChunks.split(x)
        let features = BatchChunks.map(chunks.count) { i -> [Float] in
            var h = stem.forwardInference(chunks[i], relu: true)
            if architecture.stem == .imagenet { h = MaxPool3x3.forward(h).y }
            for block in blocks { h = block.forwardInference(h) }
            return GlobalAveragePool.forward(h)
        }.flatMap { $0 }
        return (features, classify(features, rows: x.count))
    }

    /// Writes a `resnet-classifier/1` file (PyTorch layouts and torchvision names; metadata
    /// format, resnet, input and class_names, plus `metadata`) that `ResNetClassifier` loads.
    public func save(to path: String, metadata: [String: String]) throws {
        var items: [SafeTensorsWriter.Item] = []
        let pairs = [stem] + blocks.flatMap(\.pairs)
        for pair in pairs {
            for tensor in pair.parameters + pair.buffers {
                items.append(.init(name: tensor.name, shape: tensor.shape, values: tensor.value))
            }
            let bn = String(pair.runningMean.name.dropLast(".running_mean".count))
            items.append(.init(name: "\(bn).num_batches_tracked", shape: [], values: [Float(batchesTracked)]))
        }
        for tensor in [fcWeight, fcBias] { items.append(.init(name: tensor.name, shape: tensor.shape, values: tensor.value)) }
        var all = metadata
        all["format"] = "resnet-classifier/1"
        all["resnet"] = architecture.json
        all["input"] = input.json
        all["class_names"] = ClassNames.json(classNames)
        try SafeTensorsWriter.write(items, metadata: all, to: path)
    }
}

/// Where a network's initial tensors come from: a file or an initialiser.
private struct ResNetParameterSource {
    let values: (String, [Int]) throws -> [Float]

    init(_ values: @escaping (String, [Int]) throws -> [Float]) { self.values = values }

    func values(_ name: String, _ shape: [Int]) throws -> [Float] { try values(name, shape) }

    func convBN(_ spec: ResNetConvSpec) throws -> TrainableConvBN {
        let (conv, bn, inputs, outputs, kernel) = (spec.conv, spec.norm, spec.inputs, spec.outputs, spec.kernel)
        return TrainableConvBN(name: conv, bn, inputs: inputs, outputs: outputs, kernel: kernel, stride: spec.stride, padding: spec.padding,
                        weight: try values("\(conv).weight", [outputs, inputs, kernel, kernel]),
                        gamma: try values("\(bn).weight", [outputs]), beta: try values("\(bn).bias", [outputs]),
                        mean: try values("\(bn).running_mean", [outputs]), variance: try values("\(bn).running_var", [outputs]))
    }
}


extension ResNetArchitecture {
    /// The `resnet` metadata entry.
    public var json: String {
        JSONValue.object([
            "block": .string(block.rawValue), "layers": .array(layers.map { .int(Int64($0)) }),
            "widths": .array(widths.map { .int(Int64($0)) }), "stem": .string(stem.rawValue),
            "in_channels": .int(Int64(inputChannels)), "num_classes": .int(Int64(numClasses)),
        ]).jsonText
    }
}

extension ResNetInput {
    /// The `input` metadata entry. Each Float is written as its shortest decimal, which reads
    /// back as the same Float.
    public var json: String {
        func number(_ value: Float) -> JSONValue { .double(Double("\(value)") ?? Double(value)) }
        return JSONValue.object([
            "height": .int(Int64(height)), "width": .int(Int64(width)), "channels": .int(Int64(channels)),
            "scale": number(scale), "mean": .array(mean.map(number)), "std": .array(std.map(number)),
        ]).jsonText
    }
}

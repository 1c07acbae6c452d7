import CSMFormats
import CSMNumerics
import Foundation

/// EDM's networks — SongUNet (DDPM++ / NCSN++) and DhariwalUNet (ADM) — with their raw,
/// PyTorch-layout parameters and the preconditioned denoiser
/// D(x; σ, c) = c_skip·x + c_out·F(c_in·x; c_noise, c), for gradients: the same forward as
/// `SongUNet` / `DhariwalUNet` / `EDMModel.denoise`, and the gradient of mean(D) over one
/// image's pixels with respect to every parameter (diffusion data attribution's g at one σ).
///
/// Layers are `TrainableConv2d`, `TrainableUNetBlock`, `LinearWeights` and `GroupNormWeights`.
/// Supported: every configuration `SongUNet` and `DhariwalUNet` build (SongUNet: positional
/// or Fourier noise embedding, standard / skip / residual encoder, standard / skip decoder;
/// both: map_label, and map_augment — which the denoiser never uses, so its gradient is zero).
/// ADM's out_norm and out_conv are the last two decoder steps (an aux norm and conv without a
/// running output).
///
/// Parameters are indexed by EDM name, in sorted name order (`SafeTensorsFile.names`'s
/// order), buffers excluded (`*.resample_filter`, `model.map_noise.freqs`): see
/// `parameterNames`, `parameterShapes` and `parameterOffsets`. Every flat vector
/// (`parameters`, `meanDenoiserGradient`) concatenates the tensors in that order, each in the
/// file's layout (qkv rows in EDM's (head, channel, {q, k, v}) order, as stored).
public struct TrainableUNet: Sendable {
    public let configuration: EDMConfiguration
    /// Trainable tensors' names, sorted.
    public let parameterNames: [String]
    /// Their shapes, as stored.
    public let parameterShapes: [[Int]]
    /// Where each tensor starts in a flat vector; the last entry is the total count.
    public let parameterOffsets: [Int]
    /// Each tensor's position in `parameterNames`.
    let parameterIndex: [String: Int]
    /// Every tensor read (parameters and the Fourier frequencies), by name, as stored.
    let tensors: [String: [Float]]

    /// A layer with the EDM name its parameters are stored under, by which the backward pass
    /// hands their gradients over.
    struct Named<Layer: Sendable>: Sendable {
        let name: String
        let layer: Layer
    }

    /// EDM's steps (see `EDMEncoderStep`, `EDMDecoderStep`) with differentiable layers, each named.
    typealias EncoderStep = EDMEncoderStep<Named<TrainableConv2d>, Named<TrainableUNetBlock>>
    typealias DecoderStep = EDMDecoderStep<Named<TrainableConv2d>, Named<TrainableUNetBlock>, Named<GroupNormWeights>>

    let fourierFrequencies: [Float]?
    let noiseChannels: Int
    /// ADM adds the class embedding after map_layer1 (no bias, labels unscaled); SongUNet adds
    /// it to the noise embedding before map_layer0 (with a bias, labels scaled by √label_dim).
    let labelAfterLayers: Bool
    let mapLabel: LinearWeights?
    let mapLayer0: LinearWeights
    let mapLayer1: LinearWeights
    let encoder: [EncoderStep]
    let decoder: [DecoderStep]

    /// Number of trainable parameters.
    public var parameterCount: Int { parameterOffsets.last ?? 0 }

    /// Loads an `edm-diffusion/1` file of a SongUNet: metadata, every tensor's shape, the
    /// stored resample filters, no leftovers.
    public init(path: String) throws {
        try self.init(file: try SafeTensorsFile(path: path))
    }

    public init(file: SafeTensorsFile) throws {
        try file.requireFormat("edm-diffusion/1")
        guard let edm = file.metadata["edm"] else { throw FileError(file.path, "metadata has no 'edm' entry") }
        let configuration = try EDMConfiguration(json: edm, path: file.path)
        let reader = WeightReader(file)
        let filter = ResampleFilter(configuration.resampleFilter)
        for name in file.names where name.hasSuffix(".resample_filter") {
            let l = filter.taps.count
            let stored = try reader.tensor(name, [1, 1, l, l])
            for y in 0..<l {
                for x in 0..<l where abs(stored[y * l + x] - filter.taps[y] * filter.taps[x]) > 1e-6 {
                    throw FileError(file.path, "tensor '\(name)' disagrees with resample_filter in the metadata")
                }
            }
        }
        try self.init(configuration, path: file.path) { try reader.tensor($0, $1) }
        try reader.checkAllUsed()
    }

    /// The same network with the flat parameter vector `values` (in `parameterNames` order).
    public func replacingParameters(_ values: [Float]) -> TrainableUNet {
        kernelPrecondition(values.count == parameterCount, "TrainableUNet: \(values.count) values for \(parameterCount) parameters")
        let index = parameterIndex, offsets = parameterOffsets, old = tensors
        // The shapes were checked when the network was first built.
        return try! TrainableUNet(configuration, path: "<parameters>") { name, _ in
            if let i = index[name] { return Array(values[offsets[i]..<offsets[i + 1]]) }
            return old[name]!
        }
    }

    /// The flat parameter vector, in `parameterNames` order.
    public var parameters: [Float] {
        var result: [Float] = []
        result.reserveCapacity(parameterCount)
        for name in parameterNames { result += tensors[name]! }
        return result
    }

    init(_ c: EDMConfiguration, path: String, _ read: (String, [Int]) throws -> [Float]) throws {
        configuration = c
        var tensors: [String: [Float]] = [:]
        var shapes: [String: [Int]] = [:]
        func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
            let values = try read(name, shape)
            tensors[name] = values
            shapes[name] = shape
            return values
        }
        func linear(_ name: String, inputs: Int, outputs: Int, bias: Bool = true) throws -> LinearWeights {
            LinearWeights(weight: try tensor("\(name).weight", [outputs, inputs]), bias: bias ? try tensor("\(name).bias", [outputs]) : nil,
                          inputs: inputs, outputs: outputs)
        }
        let adm = c.modelType == .dhariwalUNet
        labelAfterLayers = adm
        // EDM's block options: SongUNet eps 1e-6, skip scale √½, resample_proj, one attention head;
        // ADM eps 1e-5, skip scale 1, adaptive scale, no resample_proj, 64 channels per head.
        let epsilon: Float = adm ? 1e-5 : 1e-6
        func groupNorm(_ name: String, channels: Int) throws -> GroupNormWeights {
            let groups = min(32, channels / 4)
            guard groups >= 1, channels % groups == 0 else {
                throw FileError(path, "group norm '\(name)' has \(channels) channels, not divisible into EDM's groups")
            }
            return GroupNormWeights(gamma: try tensor("\(name).weight", [channels]), beta: try tensor("\(name).bias", [channels]),
                                    groups: groups, epsilon: epsilon)
        }
        let filter = ResampleFilter(adm ? [1, 1] : c.resampleFilter)
        func conv(_ name: String, inputs: Int, outputs: Int, kernel: Int, up: Bool = false, down: Bool = false,
                  fused: Bool = false) throws -> TrainableConv2d {
            if kernel == 0 {
                return TrainableConv2d(weight: [], bias: nil, inputChannels: inputs, outputChannels: outputs, kernel: 0, up: up,
                                       down: down, filter: filter, fused: fused)
            }
            return TrainableConv2d(weight: try tensor("\(name).weight", [outputs, inputs, kernel, kernel]),
                                   bias: try tensor("\(name).bias", [outputs]), inputChannels: inputs, outputChannels: outputs,
                                   kernel: kernel, up: up, down: down, filter: filter, fused: fused)
        }
        let embeddingChannels = c.modelChannels * c.embeddingMultiplier
        let skipScale = adm ? Float(1) : Float(0.5.squareRoot())
        func block(_ b: EDMLayout.Block) throws -> TrainableUNetBlock {
            let (name, inputs, outputs, up, down) = (b.name, b.inputs, b.outputs, b.up, b.down)
            let norm0 = try groupNorm("\(name).norm0", channels: inputs)
            let conv0 = try conv("\(name).conv0", inputs: inputs, outputs: outputs, kernel: 3, up: up, down: down)
            let affine = try linear("\(name).affine", inputs: embeddingChannels, outputs: outputs * (adm ? 2 : 1))
            let norm1 = try groupNorm("\(name).norm1", channels: outputs)
            let conv1 = try conv("\(name).conv1", inputs: outputs, outputs: outputs, kernel: 3)
            var skip: TrainableConv2d?
            if outputs != inputs || up || down {
                // SongUNet (resample_proj): always a 1×1 weight; ADM: only when the channels change.
                let kernel = !adm || outputs != inputs ? 1 : 0
                skip = try conv("\(name).skip", inputs: inputs, outputs: outputs, kernel: kernel, up: up, down: down)
            }
            var blockAttention: TrainableUNetBlock.SelfAttention?
            // As in EDM: fewer channels than one head needs means no attention at all.
            let heads = b.attention ? (adm ? outputs / 64 : 1) : 0
            if heads > 0 {
                guard outputs % heads == 0 else {
                    throw FileError(path, "block '\(name)': \(outputs) channels cannot be split into \(heads) attention heads")
                }
                let norm2 = try groupNorm("\(name).norm2", channels: outputs)
                let w = try tensor("\(name).qkv.weight", [outputs * 3, outputs, 1, 1])
                let b = try tensor("\(name).qkv.bias", [outputs * 3])
                let (wq, bq) = QKVOrder.regroup(w, b, channels: outputs)
                let qkv = TrainableConv2d(weight: wq, bias: bq, inputChannels: outputs, outputChannels: outputs * 3, kernel: 1)
                let proj = try conv("\(name).proj", inputs: outputs, outputs: outputs, kernel: 1)
                blockAttention = TrainableUNetBlock.SelfAttention(norm: norm2, qkv: qkv, proj: proj, heads: heads)
            }
            return TrainableUNetBlock(norm0: norm0, conv0: conv0, affine: affine, norm1: norm1, conv1: conv1, skip: skip,
                                      adaptiveScale: adm, skipScale: skipScale, attention: blockAttention)
        }
        if adm {
            noiseChannels = c.modelChannels
            fourierFrequencies = nil
            if c.augmentDimension > 0 { _ = try tensor("model.map_augment.weight", [c.modelChannels, c.augmentDimension]) }
            mapLayer0 = try linear("model.map_layer0", inputs: c.modelChannels, outputs: embeddingChannels)
            mapLayer1 = try linear("model.map_layer1", inputs: embeddingChannels, outputs: embeddingChannels)
            mapLabel = c.labelDimension > 0
                ? try linear("model.map_label", inputs: c.labelDimension, outputs: embeddingChannels, bias: false) : nil
        } else {
            noiseChannels = c.modelChannels * c.noiseMultiplier
            fourierFrequencies = c.embeddingType == "fourier" ? try tensor("model.map_noise.freqs", [noiseChannels / 2]) : nil
            mapLabel = c.labelDimension > 0 ? try linear("model.map_label", inputs: c.labelDimension, outputs: noiseChannels) : nil
            if c.augmentDimension > 0 { _ = try tensor("model.map_augment.weight", [noiseChannels, c.augmentDimension]) }
            mapLayer0 = try linear("model.map_layer0", inputs: noiseChannels, outputs: embeddingChannels)
            mapLayer1 = try linear("model.map_layer1", inputs: embeddingChannels, outputs: embeddingChannels)
        }
        let layout = EDMLayout(c)
        func namedConv(_ spec: EDMLayout.Conv) throws -> Named<TrainableConv2d> {
            Named(name: spec.name, layer: try conv(spec.name, inputs: spec.inputs, outputs: spec.outputs, kernel: spec.kernel,
                                                   up: spec.up, down: spec.down, fused: spec.fused))
        }
        func namedBlock(_ spec: EDMLayout.Block) throws -> Named<TrainableUNetBlock> { Named(name: spec.name, layer: try block(spec)) }
        func namedNorm(_ spec: EDMLayout.Norm) throws -> Named<GroupNormWeights> {
            Named(name: spec.name, layer: try groupNorm(spec.name, channels: spec.channels))
        }
        encoder = try layout.encoder.map { step in try step.map(conv: namedConv, block: namedBlock) }
        decoder = try layout.decoder.map { step in try step.map(conv: namedConv, block: namedBlock, norm: namedNorm) }
        self.tensors = tensors
        let names = tensors.keys.filter { $0 != "model.map_noise.freqs" }.sorted()
        parameterNames = names
        parameterIndex = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        parameterShapes = names.map { shapes[$0]! }
        var offsets = [0]
        for shape in parameterShapes { offsets.append(offsets.last! + shape.reduce(1, *)) }
        parameterOffsets = offsets
    }

    // MARK: Forward

    /// The embedding's intermediate values.
    struct EmbeddingActivations {
        /// map_layer0's input: the noise embedding (SongUNet: plus the label's projection).
        var e0: [Float]
        /// map_label's input: the class labels (SongUNet: scaled by √label_dim).
        var labels: [Float]
        var z0: [Float]
        var h0: [Float]
        /// map_layer1's output (ADM: plus the label's projection).
        var z1: [Float]
        var emb: [Float]
    }

    func embedding(noiseLabels: [Float], classLabels: [Float]) -> EmbeddingActivations {
        let n = noiseLabels.count
        if labelAfterLayers {
            // ADM: emb = SiLU(map_layer1(SiLU(map_layer0(pos(noise)))) + map_label(c)).
            let e = NoiseEmbedding.positional(noiseLabels, channels: noiseChannels, endpoint: false)
            let z0 = mapLayer0.apply(e, rows: n)
            let h0 = z0.map(VectorMath.silu)
            var z1 = mapLayer1.apply(h0, rows: n)
            if let mapLabel {
                kernelPrecondition(classLabels.count == n * mapLabel.inputs, "TrainableUNet: \(classLabels.count) class label values")
                let label = mapLabel.apply(classLabels, rows: n)
                for i in 0..<z1.count { z1[i] += label[i] }
            }
            return EmbeddingActivations(e0: e, labels: classLabels, z0: z0, h0: h0, z1: z1, emb: z1.map(VectorMath.silu))
        }
        var e = SongUNet.noiseEmbedding(noiseLabels, fourierFrequencies: fourierFrequencies, channels: noiseChannels)
        var labels: [Float] = []
        if let mapLabel {
            kernelPrecondition(classLabels.count == n * mapLabel.inputs, "TrainableUNet: \(classLabels.count) class label values")
            let scale = Float(Double(mapLabel.inputs).squareRoot())
            labels = classLabels.map { $0 * scale }
            let label = mapLabel.apply(labels, rows: n)
            for i in 0..<e.count { e[i] += label[i] }
        }
        let z0 = mapLayer0.apply(e, rows: n)
        let h0 = z0.map(VectorMath.silu)
        let z1 = mapLayer1.apply(h0, rows: n)
        return EmbeddingActivations(e0: e, labels: labels, z0: z0, h0: h0, z1: z1, emb: z1.map(VectorMath.silu))
    }

    /// What the backward pass needs of one forward pass: every step's input, and every
    /// block's intermediate maps (by step index), so that its backward need not recompute them.
    struct Tape {
        var embedding: EmbeddingActivations
        var encoderInputs: [FeatureMap] = []
        var encoderBlocks: [Int: TrainableUNetBlock.Activations] = [:]
        var decoderBlocks: [Int: TrainableUNetBlock.Activations] = [:]
        /// Per decoder step: its input (a block's after the concatenation; nil for an auxUp without output).
        var decoderInputs: [FeatureMap?] = []
        /// Per decoder step: whether a block concatenated a skip, or an auxConv added a previous output.
        var decoderFlags: [Bool] = []
        var output: FeatureMap
    }

    /// F(x; noise labels, class labels) for a batch: x [n, H, W, C] → [n, H, W, C], as `SongUNet` computes it.
    public func forward(_ input: FeatureMap, noiseLabels: [Float], classLabels: [Float]) -> FeatureMap {
        run(input, noiseLabels: noiseLabels, classLabels: classLabels, record: false).output
    }

    func run(_ input: FeatureMap, noiseLabels: [Float], classLabels: [Float], record: Bool) -> Tape {
        kernelPrecondition(input.hasConsistentShape && input.channels == configuration.channels && noiseLabels.count == input.count,
                           "TrainableUNet: input or noise labels do not match the network")
        let emb = embedding(noiseLabels: noiseLabels, classLabels: classLabels)
        var tape = Tape(embedding: emb, output: input)
        var x = input
        var aux = input
        var skips: [FeatureMap] = []
        for (index, step) in encoder.enumerated() {
            switch step {
            case .auxDown(let conv):
                if record { tape.encoderInputs.append(aux) }
                aux = conv.layer.forward(aux)
            case .auxSkip(let conv):
                if record { tape.encoderInputs.append(aux) }
                x.addScaled(conv.layer.forward(aux), scale: 1)
                skips[skips.count - 1] = x
            case .auxResidual(let conv):
                if record { tape.encoderInputs.append(aux) }
                x.addScaled(conv.layer.forward(aux), scale: Float(0.5.squareRoot()))
                skips[skips.count - 1] = x
                aux = x
            case .conv(let conv):
                if record { tape.encoderInputs.append(x) }
                x = conv.layer.forward(x)
                skips.append(x)
            case .block(let block):
                if record {
                    tape.encoderInputs.append(x)
                    let activations = block.layer.activations(x, emb.emb)
                    tape.encoderBlocks[index] = activations
                    x = activations.output
                } else {
                    x = block.layer.forward(x, emb.emb)
                }
                skips.append(x)
            }
        }

        var output: FeatureMap?
        var tmp: FeatureMap?
        for (index, step) in decoder.enumerated() {
            switch step {
            case .auxUp(let conv):
                if record { tape.decoderInputs.append(output); tape.decoderFlags.append(false) }
                if let current = output { output = conv.layer.forward(current) }
            case .auxNorm(let norm):
                if record { tape.decoderInputs.append(x); tape.decoderFlags.append(false) }
                tmp = GroupNorm.apply(x, norm.layer, silu: true)
            case .auxConv(let conv):
                let normed = tmp!
                if record { tape.decoderInputs.append(normed); tape.decoderFlags.append(output != nil) }
                var result = conv.layer.forward(normed)
                if let previous = output { result.addScaled(previous, scale: 1) }
                output = result
            case .block(let block):
                let concatenate = x.channels != block.layer.inputChannels
                if concatenate { x = x.concatenatingChannels(skips.removeLast()) }
                if record {
                    tape.decoderInputs.append(x)
                    tape.decoderFlags.append(concatenate)
                    let activations = block.layer.activations(x, emb.emb)
                    tape.decoderBlocks[index] = activations
                    x = activations.output
                } else {
                    x = block.layer.forward(x, emb.emb)
                }
            }
        }
        tape.output = output ?? x
        return tape
    }

    /// D(x; σ, c) for a batch, as `EDMModel.denoise` computes it. x: [n, H, W, C]; sigma: n
    /// values; classLabels: n·label_dim values (ignored for unconditional networks).
    public func denoise(_ x: FeatureMap, sigma: [Float], classLabels: [Float]) -> FeatureMap {
        kernelPrecondition(sigma.count == x.count, "TrainableUNet: \(sigma.count) noise levels for \(x.count) images")
        return configuration.preconditioner.denoise(x, sigma: sigma) { scaled, noise in
            forward(scaled, noiseLabels: noise, classLabels: mapLabel == nil ? [] : classLabels)
        }
    }


    // MARK: Backward

    /// ∇_θ mean(D(x; σ, c)), the mean over the H·W·C values of one image x [1, H, W, C], as
    /// one flat vector in `parameterNames` order (zeros for map_augment, which D does not use).
    public func meanDenoiserGradient(_ x: FeatureMap, sigma: Float, classLabels: [Float]) -> [Float] {
        meanDenoiserGradientAndOutput(x, sigma: sigma, classLabels: classLabels).gradient
    }

    /// `meanDenoiserGradient` and D(x; σ, c) itself (as `denoise` gives it), from the same
    /// forward pass.
    public func meanDenoiserGradientAndOutput(_ x: FeatureMap, sigma: Float, classLabels: [Float]) -> (gradient: [Float], denoised: FeatureMap) {
        kernelPrecondition(x.count == 1, "TrainableUNet: the gradient of mean(D) takes one image, not \(x.count)")
        let labels = mapLabel == nil ? [Float]() : classLabels
        var tape: Tape?
        let denoised = configuration.preconditioner.denoise(x, sigma: [sigma]) { scaled, noise in
            let recorded = run(scaled, noiseLabels: noise, classLabels: labels, record: true)
            tape = recorded
            return recorded.output
        }
        var gradient = [Float](repeating: 0, count: parameterCount)
        backward(meanDenoiserOutputGradient(x, sigma: sigma), tape: tape!, into: &gradient)
        return (gradient, denoised)
    }

    /// The preconditioning's part of the gradient: D = c_skip·x + c_out·F, so dmean(D)/dF =
    /// c_out / (H·W·C) everywhere (a map shaped as x).
    private func meanDenoiserOutputGradient(_ x: FeatureMap, sigma: Float) -> FeatureMap {
        var dF = x
        let g = Float(configuration.preconditioner.coefficients(sigma: Double(sigma)).out) / Float(x.values.count)
        for j in dF.values.indices { dF.values[j] = g }
        return dF
    }

    /// The parameter gradients, by name (file layout), of a loss L given dF = dL/dF for
    /// F = `forward(input, noiseLabels:, classLabels:)`, summed over the batch.
    public func backward(_ dF: FeatureMap, input: FeatureMap, noiseLabels: [Float], classLabels: [Float]) -> [String: [Float]] {
        backward(dF, tape: run(input, noiseLabels: noiseLabels, classLabels: classLabels, record: true))
    }

    /// The same from a recorded forward pass.
    func backward(_ dF: FeatureMap, tape: Tape) -> [String: [Float]] {
        var grads: [String: [Float]] = [:]
        backward(dF, tape: tape) { name, g in
            if let old = grads[name] {
                grads[name] = zip(old, g).map { $0 + $1 }
            } else {
                grads[name] = g
            }
        }
        return grads
    }

    /// The same, added into `flat`: one vector in `parameterNames` order (untouched where D
    /// does not depend on a tensor).
    func backward(_ dF: FeatureMap, tape: Tape, into flat: inout [Float]) {
        kernelPrecondition(flat.count == parameterCount, "TrainableUNet: a flat gradient has \(parameterCount) values, not \(flat.count)")
        let index = parameterIndex, offsets = parameterOffsets
        flat.withUnsafeMutableBufferPointer { out in
            backward(dF, tape: tape) { name, g in
                guard let i = index[name] else { preconditionFailure("TrainableUNet: a gradient for \(name), which is not a parameter") }
                let start = offsets[i]
                kernelPrecondition(g.count == offsets[i + 1] - start, "TrainableUNet: gradient of \(name) has \(g.count) values")
                g.withUnsafeBufferPointer { gb in
                    for j in 0..<gb.count { out[start + j] += gb[j] }
                }
            }
        }
    }

    /// Takes each parameter's gradient by EDM name, from the backward pass.
    typealias Collect = (String, [Float]) -> Void

    /// The backward pass proper: hands each parameter's gradient to `collect` by name (a
    /// tensor used twice is handed over twice). The decoder runs first, leaving dL/dx for the
    /// encoder's last map and the skips' gradients; then the encoder; then the mapping layers,
    /// from dL/demb that every block added to.
    private func backward(_ dF: FeatureMap, tape: Tape, collect: Collect) {
        let n = tape.output.count
        kernelPrecondition(dF.count == n && dF.height == tape.output.height && dF.width == tape.output.width
                               && dF.channels == tape.output.channels, "TrainableUNet gradient: dF does not match the output")
        var dEmb = [Float](repeating: 0, count: tape.embedding.emb.count)
        var dSkips = [FeatureMap?](repeating: nil, count: skipCount)
        let dx = decoderBackward(dF, tape: tape, dSkips: &dSkips, dEmb: &dEmb, collect: collect)
        encoderBackward(dx, tape: tape, dSkips: &dSkips, dEmb: &dEmb, collect: collect)
        embeddingBackward(dEmb, tape.embedding, rows: n, collect: collect)
    }

    /// The decoder in reverse, from dF: returns dL/dx for the encoder's last map; adds each
    /// concatenated skip's share to `dSkips` (by skip index, in the encoder's order) and each
    /// block's dL/demb to `dEmb`. With aux convolutions (SongUNet's output path, ADM's
    /// out_conv) dF is the running output's gradient, else the map's.
    private func decoderBackward(_ dF: FeatureMap, tape: Tape, dSkips: inout [FeatureMap?], dEmb: inout [Float],
                                 collect: Collect) -> FeatureMap? {
        let emb = tape.embedding.emb
        var dOutput: FeatureMap?
        var dx: FeatureMap?
        var dTmp: FeatureMap?
        if decoder.contains(where: { if case .auxConv = $0 { return true } else { return false } }) {
            dOutput = dF
        } else {
            dx = dF
        }
        // Skips are popped from the end in forward order; count the pops to map each block to its skip.
        var popIndex = skipCount
        var blockSkip = [Int?](repeating: nil, count: decoder.count)
        for (i, _) in decoder.enumerated() where tape.decoderFlags[i] {
            if case .block = decoder[i] {
                popIndex -= 1
                blockSkip[i] = popIndex
            }
        }
        for i in decoder.indices.reversed() {
            switch decoder[i] {
            case .auxConv(let conv):
                let r = conv.layer.backward(dOutput!, input: tape.decoderInputs[i]!)
                Self.collectConv(conv.name, r, collect)
                dTmp = r.dx
                if !tape.decoderFlags[i] { dOutput = nil }
            case .auxNorm(let norm):
                let input = tape.decoderInputs[i]!
                let r = GroupNorm.backward(dTmp!, input: input, norm.layer, silu: true)
                collect("\(norm.name).weight", r.dGamma)
                collect("\(norm.name).bias", r.dBeta)
                Self.accumulate(&dx, r.dx)
                dTmp = nil
            case .auxUp(let conv):
                if let input = tape.decoderInputs[i], let d = dOutput {
                    dOutput = conv.layer.backward(d, input: input).dx
                }
            case .block(let block):
                let input = tape.decoderInputs[i]!
                let r = block.layer.backward(dx!, input: input, emb: emb, activations: tape.decoderBlocks[i]!)
                Self.collectBlock(block.name, block.layer, r.parameters, collect)
                for j in dEmb.indices { dEmb[j] += r.dEmb[j] }
                if let s = blockSkip[i] {
                    let (a, b) = Self.splitChannels(r.dx, input.channels - skipChannels(s))
                    dx = a
                    Self.accumulate(&dSkips[s], b)
                } else {
                    dx = r.dx
                }
            }
        }
        return dx
    }

    /// The encoder in reverse, from dL/dx for its last map (`dLast`): a skip's gradient joins
    /// x's where the skip was last assigned, the aux steps' run back along the auxiliary image,
    /// and each block's dL/demb is added to `dEmb`.
    private func encoderBackward(_ dLast: FeatureMap?, tape: Tape, dSkips: inout [FeatureMap?], dEmb: inout [Float],
                                 collect: Collect) {
        let emb = tape.embedding.emb
        var dx = dLast
        var dAux: FeatureMap?
        var slot = skipCount
        for i in encoder.indices.reversed() {
            let input = tape.encoderInputs[i]
            switch encoder[i] {
            case .auxDown(let conv):
                if let d = dAux { dAux = conv.layer.backward(d, input: input).dx }
            case .auxSkip(let conv):
                if let d = dSkips[slot - 1] { Self.accumulate(&dx, d); dSkips[slot - 1] = nil }
                let r = conv.layer.backward(dx!, input: input)
                Self.collectConv(conv.name, r, collect)
                Self.accumulate(&dAux, r.dx)
            case .auxResidual(let conv):
                if let d = dSkips[slot - 1] { Self.accumulate(&dx, d); dSkips[slot - 1] = nil }
                if let d = dAux { Self.accumulate(&dx, d) }
                var scaledDx = dx!
                for j in scaledDx.values.indices { scaledDx.values[j] *= Float(0.5.squareRoot()) }
                // x' = (x + conv(aux))·s: both inputs get s·dx'.
                let r = conv.layer.backward(scaledDx, input: input)
                Self.collectConv(conv.name, r, collect)
                dAux = r.dx
                dx = scaledDx
            case .conv(let conv):
                slot -= 1
                if let d = dSkips[slot] { Self.accumulate(&dx, d); dSkips[slot] = nil }
                Self.collectConv(conv.name, conv.layer.backward(dx!, input: input), collect)
                dx = nil
            case .block(let block):
                slot -= 1
                if let d = dSkips[slot] { Self.accumulate(&dx, d); dSkips[slot] = nil }
                let r = block.layer.backward(dx!, input: input, emb: emb, activations: tape.encoderBlocks[i]!)
                Self.collectBlock(block.name, block.layer, r.parameters, collect)
                for j in dEmb.indices { dEmb[j] += r.dEmb[j] }
                dx = r.dx
            }
        }
    }

    /// The mapping layers in reverse, from dL/demb for `rows` images: emb = SiLU(z1),
    /// z1 = map_layer1(h0), h0 = SiLU(z0), z0 = map_layer0(e0); the label's projection joins
    /// z1 (ADM) or e0 (SongUNet).
    private func embeddingBackward(_ dEmb: [Float], _ a: EmbeddingActivations, rows n: Int, collect: Collect) {
        func siluBackward(_ d: [Float], _ z: [Float]) -> [Float] {
            SiLU.backward(FeatureMap(count: 1, height: 1, width: 1, channels: d.count, values: d),
                          input: FeatureMap(count: 1, height: 1, width: 1, channels: z.count, values: z)).values
        }
        let dz1 = siluBackward(dEmb, a.z1)
        let l1 = mapLayer1, l0 = mapLayer0
        collect("model.map_layer1.weight", LinearGradient.weight(a.h0, dz1, rows: n, inputs: l1.inputs, outputs: l1.outputs))
        collect("model.map_layer1.bias", LinearGradient.bias(dz1, rows: n, outputs: l1.outputs))
        let dz0 = siluBackward(LinearGradient.input(dz1, weight: l1.weight, rows: n, inputs: l1.inputs, outputs: l1.outputs), a.z0)
        collect("model.map_layer0.weight", LinearGradient.weight(a.e0, dz0, rows: n, inputs: l0.inputs, outputs: l0.outputs))
        collect("model.map_layer0.bias", LinearGradient.bias(dz0, rows: n, outputs: l0.outputs))
        if let mapLabel {
            let d = labelAfterLayers ? dz1 : LinearGradient.input(dz0, weight: l0.weight, rows: n, inputs: l0.inputs, outputs: l0.outputs)
            collect("model.map_label.weight", LinearGradient.weight(a.labels, d, rows: n, inputs: mapLabel.inputs, outputs: mapLabel.outputs))
            if mapLabel.bias != nil { collect("model.map_label.bias", LinearGradient.bias(d, rows: n, outputs: mapLabel.outputs)) }
        }
    }

    /// A convolution's weight and bias gradients, to `collect` under `name` (those it has).
    private static func collectConv(_ name: String, _ r: (dx: FeatureMap, dWeight: [Float]?, dBias: [Float]?), _ collect: Collect) {
        if let g = r.dWeight { collect("\(name).weight", g) }
        if let g = r.dBias { collect("\(name).bias", g) }
    }

    /// A block's parameter gradients, to `collect` under its EDM names (those it has), qkv's
    /// rows back in EDM's order.
    private static func collectBlock(_ name: String, _ block: TrainableUNetBlock, _ p: TrainableUNetBlock.Gradients,
                                     _ collect: Collect) {
        func add(_ key: String, _ g: [Float]?) {
            guard let g else { return }
            collect(key, g)
        }
        add("\(name).norm0.weight", p.norm0Gamma); add("\(name).norm0.bias", p.norm0Beta)
        add("\(name).conv0.weight", p.conv0Weight); add("\(name).conv0.bias", p.conv0Bias)
        add("\(name).affine.weight", p.affineWeight); add("\(name).affine.bias", p.affineBias)
        add("\(name).norm1.weight", p.norm1Gamma); add("\(name).norm1.bias", p.norm1Beta)
        add("\(name).conv1.weight", p.conv1Weight); add("\(name).conv1.bias", p.conv1Bias)
        add("\(name).skip.weight", p.skipWeight); add("\(name).skip.bias", p.skipBias)
        add("\(name).norm2.weight", p.norm2Gamma); add("\(name).norm2.bias", p.norm2Beta)
        if let w = p.qkvWeight, let b = p.qkvBias {
            let (we, be) = QKVOrder.ungroup(w, b, channels: block.outputChannels)
            add("\(name).qkv.weight", we); add("\(name).qkv.bias", be)
        }
        add("\(name).proj.weight", p.projWeight); add("\(name).proj.bias", p.projBias)
    }

    /// a += b, or a = b where a is nil.
    private static func accumulate(_ a: inout FeatureMap?, _ b: FeatureMap) {
        if a == nil { a = b } else { a!.addScaled(b, scale: 1) }
    }

    /// The first `channels` channels of m, and the rest.
    private static func splitChannels(_ m: FeatureMap, _ channels: Int) -> (FeatureMap, FeatureMap) {
        let c = m.channels, c2 = c - channels, rows = m.count * m.pixels
        var a = FeatureMap(count: m.count, height: m.height, width: m.width, channels: channels)
        var b = FeatureMap(count: m.count, height: m.height, width: m.width, channels: c2)
        for r in 0..<rows {
            for j in 0..<channels { a.values[r * channels + j] = m.values[r * c + j] }
            for j in 0..<c2 { b.values[r * c2 + j] = m.values[r * c + channels + j] }
        }
        return (a, b)
    }

    /// The number of skips the encoder leaves (one per convolution and block), to index them in reverse.
    private var skipCount: Int {
        encoder.reduce(0) { count, step in
            switch step {
            case .conv, .block: count + 1
            default: count
            }
        }
    }

    /// The channels of the encoder's skip `index`.
    private func skipChannels(_ index: Int) -> Int {
        var i = 0
        for step in encoder {
            switch step {
            case .conv(let conv):
                if i == index { return conv.layer.outputChannels }
                i += 1
            case .block(let block):
                if i == index { return block.layer.outputChannels }
                i += 1
            default: break
            }
        }
        return 0
    }
}

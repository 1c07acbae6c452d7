import CSMNumerics

/// ADM (EDM's DhariwalUNet), built from its configuration and weights.
struct DhariwalUNet: Sendable {
    let modelChannels: Int
    let mapLabel: LinearWeights?
    let mapLayer0: LinearWeights
    let mapLayer1: LinearWeights
    /// Convolutions and blocks only: ADM has no aux encoder steps.
    let encoder: [SongUNet.EncoderStep]
    let decoder: [SamplingUNetBlock]
    let outNorm: GroupNormWeights
    let outConv: SamplingConv2d

    init(_ c: EDMConfiguration, _ r: WeightReader) throws {
        modelChannels = c.modelChannels
        let embeddingChannels = c.modelChannels * c.embeddingMultiplier
        let filter = ResampleFilter([1, 1])
        let options = SamplingUNetBlock.Options(
            embeddingChannels: embeddingChannels, epsilon: 1e-5, skipScale: 1, adaptiveScale: true,
            resampleProjection: false, filter: filter, heads: nil, channelsPerHead: 64)
        if c.augmentDimension > 0 { _ = try r.tensor("model.map_augment.weight", [c.modelChannels, c.augmentDimension]) }
        mapLayer0 = try r.linear("model.map_layer0", inputs: c.modelChannels, outputs: embeddingChannels)
        mapLayer1 = try r.linear("model.map_layer1", inputs: embeddingChannels, outputs: embeddingChannels)
        mapLabel = c.labelDimension > 0
            ? try r.linear("model.map_label", inputs: c.labelDimension, outputs: embeddingChannels, bias: false) : nil

        let layout = EDMLayout(c)
        func conv(_ spec: EDMLayout.Conv) throws -> SamplingConv2d { try r.conv(spec, filter: filter) }
        func block(_ spec: EDMLayout.Block) throws -> SamplingUNetBlock { try SamplingUNetBlock(r, spec, options) }
        encoder = try layout.encoder.map { step in
            switch step {
            case .conv, .block: try step.map(conv: conv, block: block)
            case .auxDown, .auxSkip, .auxResidual: preconditionFailure("DhariwalUNet: EDMLayout gave a SongUNet encoder step")
            }
        }
        // The layout ends ADM's decoder with out_norm and out_conv.
        var decoder: [SamplingUNetBlock] = []
        var outNorm: GroupNormWeights?
        var outConv: SamplingConv2d?
        for step in layout.decoder {
            switch step {
            case .block(let spec): decoder.append(try block(spec))
            case .auxNorm(let spec): outNorm = try r.groupNorm(spec.name, channels: spec.channels, epsilon: 1e-5)
            case .auxConv(let spec): outConv = try conv(spec)
            case .auxUp: preconditionFailure("DhariwalUNet: EDMLayout gave a SongUNet decoder step")
            }
        }
        self.decoder = decoder
        self.outNorm = outNorm!
        self.outConv = outConv!
    }

    func callAsFunction(_ input: FeatureMap, noiseLabels: [Float], classLabels: [Float]) -> FeatureMap {
        let n = input.count
        var emb = NoiseEmbedding.positional(noiseLabels, channels: modelChannels, endpoint: false)
        emb = mapLayer0.apply(emb, rows: n).map(VectorMath.silu)
        emb = mapLayer1.apply(emb, rows: n)
        if let mapLabel {
            let label = mapLabel.apply(classLabels, rows: n)
            for i in 0..<emb.count { emb[i] += label[i] }
        }
        emb = emb.map(VectorMath.silu)

        var x = input
        var skips: [FeatureMap] = []
        for step in encoder {
            if case .conv(let conv) = step { x = conv(x) } else if case .block(let block) = step { x = block(x, emb) }
            skips.append(x)
        }
        for block in decoder {
            if x.channels != block.inputChannels { x = x.concatenatingChannels(skips.removeLast()) }
            x = block(x, emb)
        }
        return outConv(GroupNorm.apply(x, outNorm, silu: true))
    }
}

import CSMNumerics

/// ADM (EDM's DhariwalUNet), built from its configuration and weights.
struct DhariwalUNet: Sendable {
    let modelChannels: Int
    let mapLabel: LinearWeights?
    let mapLayer0: LinearWeights
    let mapLayer1: LinearWeights
    let encoder: [(conv: EDMConv2d?, block: EDMUNetBlock?)]
    let decoder: [EDMUNetBlock]
    let outNorm: GroupNormWeights
    let outConv: EDMConv2d

    init(_ c: EDMConfiguration, _ r: WeightReader) throws {
        modelChannels = c.modelChannels
        let embeddingChannels = c.modelChannels * c.embeddingMultiplier
        let filter = ResampleFilter([1, 1])
        let options = EDMUNetBlock.Options(
            embeddingChannels: embeddingChannels, epsilon: 1e-5, skipScale: 1, adaptiveScale: true,
            resampleProjection: false, filter: filter, heads: nil, channelsPerHead: 64)
        if c.augmentDimension > 0 { _ = try r.tensor("model.map_augment.weight", [c.modelChannels, c.augmentDimension]) }
        mapLayer0 = try r.linear("model.map_layer0", inputs: c.modelChannels, outputs: embeddingChannels)
        mapLayer1 = try r.linear("model.map_layer1", inputs: embeddingChannels, outputs: embeddingChannels)
        mapLabel = c.labelDimension > 0
            ? try r.linear("model.map_label", inputs: c.labelDimension, outputs: embeddingChannels, bias: false) : nil

        let layout = EDMLayout(c)
        encoder = try layout.encoder.map { step in
            switch step {
            case .conv(let name, let inputs, let outputs):
                (try r.conv(name, inputs: inputs, outputs: outputs, kernel: 3, filter: filter), nil)
            case .block(let block):
                (nil, try EDMUNetBlock(r, block, options))
            case .auxDown, .auxSkip, .auxResidual:
                preconditionFailure("DhariwalUNet: EDMLayout gave a SongUNet encoder step")
            }
        }
        // The layout ends ADM's decoder with out_norm and out_conv.
        var decoder: [EDMUNetBlock] = []
        var outNorm: GroupNormWeights?
        var outConv: EDMConv2d?
        for step in layout.decoder {
            switch step {
            case .block(let block): decoder.append(try EDMUNetBlock(r, block, options))
            case .auxNorm(let name, let channels): outNorm = try r.groupNorm(name, channels: channels, epsilon: 1e-5)
            case .auxConv(let name, let inputs, let outputs): outConv = try r.conv(name, inputs: inputs, outputs: outputs, kernel: 3, filter: filter)
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
            if let conv = step.conv { x = conv(x) } else if let block = step.block { x = block(x, emb) }
            skips.append(x)
        }
        for block in decoder {
            if x.channels != block.inputChannels { x = x.concatenatingChannels(skips.removeLast()) }
            x = block(x, emb)
        }
        return outConv(GroupNorm.apply(x, outNorm, silu: true))
    }
}

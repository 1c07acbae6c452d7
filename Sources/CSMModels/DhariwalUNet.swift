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

        var encoder: [(conv: EDMConv2d?, block: EDMUNetBlock?)] = []
        var skips: [Int] = []
        var cout = c.channels
        for (level, mult) in c.channelMultipliers.enumerated() {
            let res = c.resolution >> level
            let prefix = "model.enc.\(res)x\(res)"
            if level == 0 {
                let cin = cout
                cout = c.modelChannels * mult
                encoder.append((try r.conv("\(prefix)_conv", inputs: cin, outputs: cout, kernel: 3, filter: filter), nil))
            } else {
                encoder.append((nil, try EDMUNetBlock(r, "\(prefix)_down", inputs: cout, outputs: cout, down: true, options)))
            }
            skips.append(cout)
            for index in 0..<c.blocksPerResolution {
                let cin = cout
                cout = c.modelChannels * mult
                encoder.append((nil, try EDMUNetBlock(r, "\(prefix)_block\(index)", inputs: cin, outputs: cout,
                                                      attention: c.attentionResolutions.contains(res), options)))
                skips.append(cout)
            }
        }
        var decoder: [EDMUNetBlock] = []
        for (level, mult) in c.channelMultipliers.enumerated().reversed() {
            let res = c.resolution >> level
            let prefix = "model.dec.\(res)x\(res)"
            if level == c.channelMultipliers.count - 1 {
                decoder.append(try EDMUNetBlock(r, "\(prefix)_in0", inputs: cout, outputs: cout, attention: true, options))
                decoder.append(try EDMUNetBlock(r, "\(prefix)_in1", inputs: cout, outputs: cout, options))
            } else {
                decoder.append(try EDMUNetBlock(r, "\(prefix)_up", inputs: cout, outputs: cout, up: true, options))
            }
            for index in 0...c.blocksPerResolution {
                let cin = cout + skips.removeLast()
                cout = c.modelChannels * mult
                decoder.append(try EDMUNetBlock(r, "\(prefix)_block\(index)", inputs: cin, outputs: cout,
                                                attention: c.attentionResolutions.contains(res), options))
            }
        }
        self.encoder = encoder
        self.decoder = decoder
        outNorm = try r.groupNorm("model.out_norm", channels: cout, epsilon: 1e-5)
        outConv = try r.conv("model.out_conv", inputs: cout, outputs: c.channels, kernel: 3, filter: filter)
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

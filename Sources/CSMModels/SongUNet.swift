import CSMNumerics
import Foundation

/// DDPM++ / NCSN++ (EDM's SongUNet), built from its configuration and weights.
struct SongUNet: Sendable {
    enum EncoderStep: Sendable {
        case conv(EDMConv2d), block(EDMUNetBlock)
        case auxDown(EDMConv2d), auxSkip(EDMConv2d), auxResidual(EDMConv2d)
    }
    enum DecoderStep: Sendable {
        case block(EDMUNetBlock), auxUp(EDMConv2d), auxNorm(GroupNormWeights), auxConv(EDMConv2d)
    }

    let fourierFrequencies: [Float]?
    let noiseChannels: Int
    let labelDimension: Int
    let mapLabel: LinearWeights?
    let mapLayer0: LinearWeights
    let mapLayer1: LinearWeights
    let encoder: [EncoderStep]
    let decoder: [DecoderStep]

    init(_ c: EDMConfiguration, _ r: WeightReader) throws {
        let embeddingChannels = c.modelChannels * c.embeddingMultiplier
        noiseChannels = c.modelChannels * c.noiseMultiplier
        labelDimension = c.labelDimension
        let filter = ResampleFilter(c.resampleFilter)
        let options = EDMUNetBlock.Options(
            embeddingChannels: embeddingChannels, epsilon: 1e-6, skipScale: Float(0.5.squareRoot()), adaptiveScale: false,
            resampleProjection: true, filter: filter, heads: 1, channelsPerHead: 64)

        if c.embeddingType == "fourier" {
            fourierFrequencies = try r.tensor("model.map_noise.freqs", [noiseChannels / 2])
        } else {
            fourierFrequencies = nil
        }
        mapLabel = c.labelDimension > 0 ? try r.linear("model.map_label", inputs: c.labelDimension, outputs: noiseChannels) : nil
        if c.augmentDimension > 0 { _ = try r.tensor("model.map_augment.weight", [noiseChannels, c.augmentDimension]) }
        mapLayer0 = try r.linear("model.map_layer0", inputs: noiseChannels, outputs: embeddingChannels)
        mapLayer1 = try r.linear("model.map_layer1", inputs: embeddingChannels, outputs: embeddingChannels)

        var encoder: [EncoderStep] = []
        var skips: [Int] = []
        var cout = c.channels, caux = c.channels
        for (level, mult) in c.channelMultipliers.enumerated() {
            let res = c.resolution >> level
            let prefix = "model.enc.\(res)x\(res)"
            if level == 0 {
                let cin = cout
                cout = c.modelChannels
                encoder.append(.conv(try r.conv("\(prefix)_conv", inputs: cin, outputs: cout, kernel: 3, filter: filter)))
                skips.append(cout)
            } else {
                encoder.append(.block(try EDMUNetBlock(r, "\(prefix)_down", inputs: cout, outputs: cout, down: true, options)))
                skips.append(cout)
                if c.encoderType == "skip" {
                    encoder.append(.auxDown(try r.conv("\(prefix)_aux_down", inputs: caux, outputs: caux, kernel: 0, down: true, filter: filter)))
                    encoder.append(.auxSkip(try r.conv("\(prefix)_aux_skip", inputs: caux, outputs: cout, kernel: 1, filter: filter)))
                }
                if c.encoderType == "residual" {
                    encoder.append(.auxResidual(try r.conv("\(prefix)_aux_residual", inputs: caux, outputs: cout, kernel: 3,
                                                           down: true, filter: filter, fused: true)))
                    caux = cout
                }
            }
            for index in 0..<c.blocksPerResolution {
                let cin = cout
                cout = c.modelChannels * mult
                let attention = c.attentionResolutions.contains(res)
                encoder.append(.block(try EDMUNetBlock(r, "\(prefix)_block\(index)", inputs: cin, outputs: cout, attention: attention, options)))
                skips.append(cout)
            }
        }

        var decoder: [DecoderStep] = []
        for (level, mult) in c.channelMultipliers.enumerated().reversed() {
            let res = c.resolution >> level
            let prefix = "model.dec.\(res)x\(res)"
            if level == c.channelMultipliers.count - 1 {
                decoder.append(.block(try EDMUNetBlock(r, "\(prefix)_in0", inputs: cout, outputs: cout, attention: true, options)))
                decoder.append(.block(try EDMUNetBlock(r, "\(prefix)_in1", inputs: cout, outputs: cout, options)))
            } else {
                decoder.append(.block(try EDMUNetBlock(r, "\(prefix)_up", inputs: cout, outputs: cout, up: true, options)))
            }
            for index in 0...c.blocksPerResolution {
                let cin = cout + skips.removeLast()
                cout = c.modelChannels * mult
                let attention = index == c.blocksPerResolution && c.attentionResolutions.contains(res)
                decoder.append(.block(try EDMUNetBlock(r, "\(prefix)_block\(index)", inputs: cin, outputs: cout, attention: attention, options)))
            }
            if c.decoderType == "skip" || level == 0 {
                if c.decoderType == "skip" && level < c.channelMultipliers.count - 1 {
                    decoder.append(.auxUp(try r.conv("\(prefix)_aux_up", inputs: c.channels, outputs: c.channels, kernel: 0, up: true, filter: filter)))
                }
                decoder.append(.auxNorm(try r.groupNorm("\(prefix)_aux_norm", channels: cout, epsilon: 1e-6)))
                decoder.append(.auxConv(try r.conv("\(prefix)_aux_conv", inputs: cout, outputs: c.channels, kernel: 3, filter: filter)))
            }
        }
        self.encoder = encoder
        self.decoder = decoder
    }

    /// SongUNet's noise embedding of each label: NCSN++'s Fourier features when the file
    /// stores frequencies, else DDPM++'s positional ones, with EDM's halves swapped to
    /// [sin | cos] (`channels` per label).
    static func noiseEmbedding(_ noiseLabels: [Float], fourierFrequencies: [Float]?, channels: Int) -> [Float] {
        var emb = fourierFrequencies.map { NoiseEmbedding.fourier(noiseLabels, freqs: $0) }
            ?? NoiseEmbedding.positional(noiseLabels, channels: channels, endpoint: true)
        let half = channels / 2
        for row in 0..<noiseLabels.count {
            for i in 0..<half { emb.swapAt(row * channels + i, row * channels + half + i) }
        }
        return emb
    }

    /// F(x; noise labels, class labels) for a batch: x [n, H, W, C] → [n, H, W, C].
    func callAsFunction(_ input: FeatureMap, noiseLabels: [Float], classLabels: [Float]) -> FeatureMap {
        let n = input.count
        var emb = Self.noiseEmbedding(noiseLabels, fourierFrequencies: fourierFrequencies, channels: noiseChannels)
        if let mapLabel {
            let scale = Float(Double(labelDimension).squareRoot())
            let label = mapLabel.apply(classLabels.map { $0 * scale }, rows: n)
            for i in 0..<emb.count { emb[i] += label[i] }
        }
        emb = mapLayer0.apply(emb, rows: n).map(VectorMath.silu)
        emb = mapLayer1.apply(emb, rows: n).map(VectorMath.silu)

        var x = input
        var aux = input
        var skips: [FeatureMap] = []
        for step in encoder {
            switch step {
            case .auxDown(let conv):
                aux = conv(aux)
            case .auxSkip(let conv):
                x.addScaled(conv(aux), scale: 1)
                skips[skips.count - 1] = x
            case .auxResidual(let conv):
                x.addScaled(conv(aux), scale: Float(0.5.squareRoot()))
                skips[skips.count - 1] = x
                aux = x
            case .conv(let conv):
                x = conv(x)
                skips.append(x)
            case .block(let block):
                x = block(x, emb)
                skips.append(x)
            }
        }

        var output: FeatureMap?
        var tmp: FeatureMap?
        for step in decoder {
            switch step {
            case .auxUp(let conv):
                if let current = output { output = conv(current) }
            case .auxNorm(let norm):
                tmp = GroupNorm.apply(x, norm, silu: true)
            case .auxConv(let conv):
                guard let normed = tmp else { continue }
                var result = conv(normed)
                if let previous = output { result.addScaled(previous, scale: 1) }
                output = result
            case .block(let block):
                if x.channels != block.inputChannels { x = x.concatenatingChannels(skips.removeLast()) }
                x = block(x, emb)
            }
        }
        return output ?? x
    }
}

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

        let layout = EDMLayout(c)
        encoder = try layout.encoder.map { step -> EncoderStep in
            switch step {
            case .conv(let name, let inputs, let outputs):
                .conv(try r.conv(name, inputs: inputs, outputs: outputs, kernel: 3, filter: filter))
            case .block(let block):
                .block(try EDMUNetBlock(r, block, options))
            case .auxDown(let name, let channels):
                .auxDown(try r.conv(name, inputs: channels, outputs: channels, kernel: 0, down: true, filter: filter))
            case .auxSkip(let name, let inputs, let outputs):
                .auxSkip(try r.conv(name, inputs: inputs, outputs: outputs, kernel: 1, filter: filter))
            case .auxResidual(let name, let inputs, let outputs):
                .auxResidual(try r.conv(name, inputs: inputs, outputs: outputs, kernel: 3, down: true, filter: filter, fused: true))
            }
        }
        decoder = try layout.decoder.map { step -> DecoderStep in
            switch step {
            case .block(let block):
                .block(try EDMUNetBlock(r, block, options))
            case .auxUp(let name, let channels):
                .auxUp(try r.conv(name, inputs: channels, outputs: channels, kernel: 0, up: true, filter: filter))
            case .auxNorm(let name, let channels):
                .auxNorm(try r.groupNorm(name, channels: channels, epsilon: 1e-6))
            case .auxConv(let name, let inputs, let outputs):
                .auxConv(try r.conv(name, inputs: inputs, outputs: outputs, kernel: 3, filter: filter))
            }
        }
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

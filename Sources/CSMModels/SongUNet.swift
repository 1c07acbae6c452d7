import CSMNumerics
import Foundation

/// DDPM++ / NCSN++ (EDM's SongUNet), built from its configuration and weights.
struct SongUNet: Sendable {
    /// The sampling layers of EDM's steps (see `EDMEncoderStep`, `EDMDecoderStep`); `DhariwalUNet`
    /// uses them too.
    typealias EncoderStep = EDMEncoderStep<SamplingConv2d, SamplingUNetBlock>
    typealias DecoderStep = EDMDecoderStep<SamplingConv2d, SamplingUNetBlock, GroupNormWeights>

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
        let options = SamplingUNetBlock.Options(
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
        func conv(_ spec: EDMLayout.Conv) throws -> SamplingConv2d { try r.conv(spec, filter: filter) }
        func block(_ spec: EDMLayout.Block) throws -> SamplingUNetBlock { try SamplingUNetBlock(r, spec, options) }
        func norm(_ spec: EDMLayout.Norm) throws -> GroupNormWeights {
            try r.groupNorm(spec.name, channels: spec.channels, epsilon: 1e-6)
        }
        encoder = try layout.encoder.map { step in try step.map(conv: conv, block: block) }
        decoder = try layout.decoder.map { step in try step.map(conv: conv, block: block, norm: norm) }
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

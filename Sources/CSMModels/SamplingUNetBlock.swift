import CSMFormats
import CSMNumerics

/// EDM's UNetBlock for sampling: the union of the DDPM++, NCSN++ and ADM residual blocks, with
/// optional up/down sampling and self-attention. It keeps only inference weights;
/// `TrainableUNetBlock` is the same block with raw parameters and gradients.
struct SamplingUNetBlock: Sendable {
    let inputChannels: Int
    let outputChannels: Int
    let norm0: GroupNormWeights
    let conv0: SamplingConv2d
    let affine: LinearWeights
    let norm1: GroupNormWeights
    let conv1: SamplingConv2d
    let skip: SamplingConv2d?
    let adaptiveScale: Bool
    let skipScale: Float
    /// Attention, if any: norm2, qkv (rows reordered to [q | k | v]), proj, head count.
    let attention: (norm: GroupNormWeights, qkv: ConvolutionWeights, proj: ConvolutionWeights, heads: Int)?

    struct Options {
        var embeddingChannels: Int
        var epsilon: Float
        var skipScale: Float
        var adaptiveScale: Bool
        var resampleProjection: Bool
        var filter: ResampleFilter
        /// SongUNet: a fixed head count; ADM: channels per head.
        var heads: Int?
        var channelsPerHead: Int
    }

    init(_ r: WeightReader, _ block: EDMLayout.Block, _ o: Options) throws {
        let (name, inputs, outputs, up, down) = (block.name, block.inputs, block.outputs, block.up, block.down)
        inputChannels = inputs
        outputChannels = outputs
        adaptiveScale = o.adaptiveScale
        skipScale = o.skipScale
        norm0 = try r.groupNorm("\(name).norm0", channels: inputs, epsilon: o.epsilon)
        conv0 = try r.conv("\(name).conv0", inputs: inputs, outputs: outputs, kernel: 3, up: up, down: down, filter: o.filter)
        affine = try r.linear("\(name).affine", inputs: o.embeddingChannels, outputs: outputs * (o.adaptiveScale ? 2 : 1))
        norm1 = try r.groupNorm("\(name).norm1", channels: outputs, epsilon: o.epsilon)
        conv1 = try r.conv("\(name).conv1", inputs: outputs, outputs: outputs, kernel: 3, filter: o.filter)
        if outputs != inputs || up || down {
            let kernel = (o.resampleProjection || outputs != inputs) ? 1 : 0
            skip = try r.conv("\(name).skip", inputs: inputs, outputs: outputs, kernel: kernel, up: up, down: down, filter: o.filter)
        } else {
            skip = nil
        }
        // As in EDM: fewer channels than one head needs means no attention at all.
        let heads = block.attention ? (o.heads ?? outputs / o.channelsPerHead) : 0
        if heads > 0 {
            guard outputs % heads == 0 else {
                throw FileError(r.path, "block '\(name)': \(outputs) channels cannot be split into \(heads) attention heads")
            }
            let norm2 = try r.groupNorm("\(name).norm2", channels: outputs, epsilon: o.epsilon)
            let w = try r.tensor("\(name).qkv.weight", [outputs * 3, outputs, 1, 1])
            let b = try r.tensor("\(name).qkv.bias", [outputs * 3])
            // EDM splits qkv channels as (head, channel, {q,k,v}); regroup to [q | k | v].
            let (wq, bq) = QKVOrder.regroup(w, b, channels: outputs)
            let qkv = ConvolutionWeights(pytorch: wq, bias: bq, outputChannels: outputs * 3, inputChannels: outputs, kernel: 1,
                                         precision: r.precision)
            let projW = try r.tensor("\(name).proj.weight", [outputs, outputs, 1, 1])
            let projB = try r.tensor("\(name).proj.bias", [outputs])
            let proj = ConvolutionWeights(pytorch: projW, bias: projB, outputChannels: outputs, inputChannels: outputs, kernel: 1,
                                          precision: r.precision)
            self.attention = (norm2, qkv, proj, heads)
        } else {
            self.attention = nil
        }
    }

    /// x: [n, H, W, Cin], emb: [n, E] → [n, H', W', Cout].
    func callAsFunction(_ x: FeatureMap, _ emb: [Float]) -> FeatureMap {
        let n = x.count, c = outputChannels
        let params = affine.apply(emb, rows: n)
        var h = GroupNorm.apply(x, norm0, silu: true)
        h = conv0(h)
        if adaptiveScale {
            var scale = [Float](repeating: 0, count: n * c), shift = [Float](repeating: 0, count: n * c)
            for i in 0..<n {
                for j in 0..<c {
                    scale[i * c + j] = params[i * 2 * c + j] + 1
                    shift[i * c + j] = params[i * 2 * c + c + j]
                }
            }
            h = GroupNorm.apply(h, norm1, postScale: scale, postShift: shift, silu: true)
        } else {
            h = GroupNorm.apply(h, norm1, preBias: params, silu: true)
        }
        h = conv1(h, adding: skip.map { $0(x) } ?? x, scale: skipScale)
        if let attention {
            let normed = GroupNorm.apply(h, attention.norm, silu: false)
            let qkv = Convolution.apply(normed, attention.qkv, padding: 0)
            let a = Attention.apply(qkv, heads: attention.heads)
            var projected = Convolution.apply(a, attention.proj, padding: 0)
            projected.addScaled(h, scale: skipScale)
            h = projected
        }
        return h
    }
}

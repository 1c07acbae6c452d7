import CSMNumerics

/// EDM's UNetBlock (`training/networks.py`) with raw parameters, for gradients: the forward
/// `SamplingUNetBlock` computes and its backward pass.
///
/// With C the output channels and s = `skipScale`:
///
///     params = affine(emb)                                   [n, C] or [n, 2C] (adaptive)
///     h = conv0(SiLU(GN(x; norm0)))
///     h = SiLU(GN(h; norm1)·(1 + params[:, :C]) + params[:, C:])   (adaptive scale)
///     h = SiLU(GN(h + params; norm1))                              (otherwise)
///     h = (conv1(h) + skip(x)) · s                           (x itself without a skip)
///     h = (proj(Attention(qkv(GN(h; norm2)), heads)) + h) · s     (with attention)
public struct TrainableUNetBlock: Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let norm0: GroupNormWeights
    /// 3×3, with the block's up or down resampling.
    public let conv0: TrainableConv2d
    /// emb [E] → [C], or [2C] (scale then shift) with adaptive scale.
    public let affine: LinearWeights
    public let norm1: GroupNormWeights
    /// 3×3, C → C.
    public let conv1: TrainableConv2d
    /// The skip path (1×1 or resampling only), nil for the identity.
    public let skip: TrainableConv2d?
    public let adaptiveScale: Bool
    public let skipScale: Float
    public let attention: SelfAttention?

    public init(norm0: GroupNormWeights, conv0: TrainableConv2d, affine: LinearWeights, norm1: GroupNormWeights,
                conv1: TrainableConv2d, skip: TrainableConv2d?, adaptiveScale: Bool, skipScale: Float,
                attention: SelfAttention? = nil) {
        let cin = conv0.inputChannels, c = conv0.outputChannels
        kernelPrecondition(conv0.kernel > 0 && conv1.kernel > 0, "EDM block: conv0 and conv1 need a kernel")
        kernelPrecondition(norm0.channels == cin && norm1.channels == c, "EDM block: group norms do not match \(cin) → \(c) channels")
        kernelPrecondition(affine.outputs == c * (adaptiveScale ? 2 : 1),
                           "EDM block: affine gives \(affine.outputs) values, the block needs \(c * (adaptiveScale ? 2 : 1))")
        kernelPrecondition(conv1.inputChannels == c && conv1.outputChannels == c && !conv1.up && !conv1.down,
                           "EDM block: conv1 must map \(c) → \(c) channels without resampling")
        if let skip {
            kernelPrecondition(skip.inputChannels == cin && skip.outputChannels == c && skip.up == conv0.up && skip.down == conv0.down,
                               "EDM block: the skip must map \(cin) → \(c) channels and resample as conv0")
        } else {
            kernelPrecondition(cin == c && !conv0.up && !conv0.down, "EDM block: without a skip, channels and size must be kept")
        }
        kernelPrecondition(attention.map { $0.proj.outputChannels == c } ?? true, "EDM block: attention does not take \(c) channels")
        inputChannels = cin
        outputChannels = c
        self.norm0 = norm0
        self.conv0 = conv0
        self.affine = affine
        self.norm1 = norm1
        self.conv1 = conv1
        self.skip = skip
        self.adaptiveScale = adaptiveScale
        self.skipScale = skipScale
        self.attention = attention
    }

    /// The forward's intermediate maps, as backward needs them.
    struct Activations {
        /// affine(emb), [n, C] or [n, 2C].
        var params: [Float]
        /// SiLU(GN(x; norm0)), conv0's input.
        var a0: FeatureMap
        /// conv0's output, norm1's input.
        var c0: FeatureMap
        /// 1 + params[:, :C] and params[:, C:] with adaptive scale (nil otherwise).
        var scale: [Float]?
        var shift: [Float]?
        /// norm1's output after SiLU, conv1's input.
        var a1: FeatureMap
        /// (conv1 + skip)·s: the output without attention, the attention's input with it.
        var residual: FeatureMap
        /// With attention: GN(residual; norm2), qkv and the attention's output.
        var normed: FeatureMap?
        var qkv: FeatureMap?
        var attended: FeatureMap?
        var output: FeatureMap
    }

    /// x: [n, H, W, Cin], emb: [n·E] → [n, H', W', C], as `SamplingUNetBlock` computes it.
    public func forward(_ x: FeatureMap, _ emb: [Float]) -> FeatureMap {
        activations(x, emb).output
    }

    func activations(_ x: FeatureMap, _ emb: [Float]) -> Activations {
        let n = x.count, c = outputChannels
        kernelPrecondition(x.hasConsistentShape && x.channels == inputChannels,
                           "EDM block: input has \(x.channels) channels, the block takes \(inputChannels)")
        kernelPrecondition(emb.count == n * affine.inputs, "EDM block: \(emb.count) embedding values are not \(n) rows of \(affine.inputs)")
        let params = affine.apply(emb, rows: n)
        let a0 = GroupNorm.apply(x, norm0, silu: true)
        let c0 = conv0.forward(a0)
        var scale: [Float]?, shift: [Float]?
        let a1: FeatureMap
        if adaptiveScale {
            var sc = [Float](repeating: 0, count: n * c), sh = sc
            for i in 0..<n {
                for j in 0..<c {
                    sc[i * c + j] = params[i * 2 * c + j] + 1
                    sh[i * c + j] = params[i * 2 * c + c + j]
                }
            }
            a1 = GroupNorm.apply(c0, norm1, postScale: sc, postShift: sh, silu: true)
            scale = sc
            shift = sh
        } else {
            a1 = GroupNorm.apply(c0, norm1, preBias: params, silu: true)
        }
        var residual = conv1.forward(a1)
        residual.addScaled(skip?.forward(x) ?? x, scale: skipScale)
        var result = Activations(params: params, a0: a0, c0: c0, scale: scale, shift: shift, a1: a1, residual: residual,
                                 output: residual)
        if let attention {
            let normed = GroupNorm.apply(residual, attention.norm, silu: false)
            let qkv = attention.qkv.forward(normed)
            let attended = Attention.apply(qkv, heads: attention.heads)
            var projected = attention.proj.forward(attended)
            projected.addScaled(residual, scale: skipScale)
            result.normed = normed
            result.qkv = qkv
            result.attended = attended
            result.output = projected
        }
        return result
    }

    /// The gradients of a loss L given dy = dL/dy for y = `forward(x, emb)`: dL/dx
    /// [n, H, W, Cin], dL/demb [n·E] and every parameter's gradient, summed over the images.
    /// The intermediate maps are recomputed from x and emb.
    public func backward(_ dy: FeatureMap, input x: FeatureMap, emb: [Float])
        -> (dx: FeatureMap, dEmb: [Float], parameters: Gradients) {
        backward(dy, input: x, emb: emb, activations: activations(x, emb))
    }

    /// The same, with the intermediate maps the forward kept (`activations(x, emb)`).
    func backward(_ dy: FeatureMap, input x: FeatureMap, emb: [Float], activations act: Activations)
        -> (dx: FeatureMap, dEmb: [Float], parameters: Gradients) {
        let n = x.count, c = outputChannels
        kernelPrecondition(dy.hasConsistentShape && dy.count == n && dy.height == act.output.height
                               && dy.width == act.output.width && dy.channels == c,
                           "EDM block gradient: dy is \(dy.count)×\(dy.height)×\(dy.width)×\(dy.channels), the output "
                           + "\(n)×\(act.output.height)×\(act.output.width)×\(c)")

        // Attention: y = (proj(a) + h)·s, a = Attention(qkv(GN(h))).
        var dResidual = dy
        var attentionGradients: (norm: GroupNormGradients, qkv: (dWeight: [Float]?, dBias: [Float]?),
                                 proj: (dWeight: [Float]?, dBias: [Float]?))?
        if let attention, let normed = act.normed, let qkv = act.qkv, let attended = act.attended {
            let dScaled = scaled(dy, skipScale)
            let proj = attention.proj.backward(dScaled, input: attended)
            let dqkv = Attention.backward(proj.dx, qkv: qkv, heads: attention.heads)
            let qkvGradients = attention.qkv.backward(dqkv, input: normed)
            let norm = GroupNorm.backward(qkvGradients.dx, input: act.residual, attention.norm, silu: false)
            dResidual = dScaled
            dResidual.addScaled(norm.dx, scale: 1)
            attentionGradients = (norm, (qkvGradients.dWeight, qkvGradients.dBias), (proj.dWeight, proj.dBias))
        }

        // h = (conv1(a1) + skip(x))·s.
        let dSum = scaled(dResidual, skipScale)
        let conv1Gradients = conv1.backward(dSum, input: act.a1)
        let norm1Gradients: GroupNormGradients
        var dParams = [Float](repeating: 0, count: act.params.count)
        if adaptiveScale {
            norm1Gradients = GroupNorm.backward(conv1Gradients.dx, input: act.c0, norm1, postScale: act.scale, postShift: act.shift,
                                                silu: true)
            let dScale = norm1Gradients.dPostScale!, dShift = norm1Gradients.dPostShift!
            for i in 0..<n {
                for j in 0..<c {
                    dParams[i * 2 * c + j] = dScale[i * c + j]
                    dParams[i * 2 * c + c + j] = dShift[i * c + j]
                }
            }
        } else {
            norm1Gradients = GroupNorm.backward(conv1Gradients.dx, input: act.c0, norm1, preBias: act.params, silu: true)
            dParams = norm1Gradients.dPreBias!
        }
        let conv0Gradients = conv0.backward(norm1Gradients.dx, input: act.a0)
        let norm0Gradients = GroupNorm.backward(conv0Gradients.dx, input: x, norm0, silu: true)

        var dx = norm0Gradients.dx
        var skipGradients: (dWeight: [Float]?, dBias: [Float]?) = (nil, nil)
        if let skip {
            let g = skip.backward(dSum, input: x)
            dx.addScaled(g.dx, scale: 1)
            skipGradients = (g.dWeight, g.dBias)
        } else {
            dx.addScaled(dSum, scale: 1)
        }

        // params = emb·Wᵀ + b.
        let e = affine.inputs, outputs = affine.outputs
        let dEmb = LinearGradient.input(dParams, weight: affine.weight, rows: n, inputs: e, outputs: outputs)
        let dAffineWeight = LinearGradient.weight(emb, dParams, rows: n, inputs: e, outputs: outputs)
        let dAffineBias = affine.bias == nil ? nil : LinearGradient.bias(dParams, rows: n, outputs: outputs)

        let parameters = Gradients(
            norm0Gamma: norm0Gradients.dGamma, norm0Beta: norm0Gradients.dBeta,
            conv0Weight: conv0Gradients.dWeight!, conv0Bias: conv0Gradients.dBias,
            affineWeight: dAffineWeight, affineBias: dAffineBias,
            norm1Gamma: norm1Gradients.dGamma, norm1Beta: norm1Gradients.dBeta,
            conv1Weight: conv1Gradients.dWeight!, conv1Bias: conv1Gradients.dBias,
            skipWeight: skipGradients.dWeight, skipBias: skipGradients.dBias,
            norm2Gamma: attentionGradients?.norm.dGamma, norm2Beta: attentionGradients?.norm.dBeta,
            qkvWeight: attentionGradients?.qkv.dWeight, qkvBias: attentionGradients?.qkv.dBias,
            projWeight: attentionGradients?.proj.dWeight, projBias: attentionGradients?.proj.dBias)
        return (dx, dEmb, parameters)
    }

    /// m · s, elementwise.
    func scaled(_ m: FeatureMap, _ s: Float) -> FeatureMap {
        var result = m
        if s != 1 {
            for i in result.values.indices { result.values[i] *= s }
        }
        return result
    }
}

extension TrainableUNetBlock {
    /// The self-attention part of a `TrainableUNetBlock`, with raw parameters.
    public struct SelfAttention: Sendable {
        /// norm2: group norm of the block's residual output, without SiLU.
        public let norm: GroupNormWeights
        /// The 1×1 qkv convolution, C → 3C, with its output channels in csm's layout [q | k | v]
        /// (each C channels split into `heads` contiguous blocks), not EDM's (head, channel, {q, k, v}):
        /// EDM's row i·3 + j is row j·C + i here, as `QKVOrder.regroup` orders it.
        public let qkv: TrainableConv2d
        /// The 1×1 output projection, C → C.
        public let proj: TrainableConv2d
        public let heads: Int

        public init(norm: GroupNormWeights, qkv: TrainableConv2d, proj: TrainableConv2d, heads: Int) {
            let c = proj.outputChannels
            kernelPrecondition(heads > 0 && c % heads == 0, "EDM block attention: \(c) channels cannot be split into \(heads) heads")
            kernelPrecondition(norm.channels == c && qkv.kernel == 1 && qkv.inputChannels == c && qkv.outputChannels == 3 * c
                                   && !qkv.up && !qkv.down,
                               "EDM block attention: qkv must be a 1×1 convolution \(c) → \(3 * c)")
            kernelPrecondition(proj.kernel == 1 && proj.inputChannels == c && !proj.up && !proj.down,
                               "EDM block attention: proj must be a 1×1 convolution \(c) → \(c)")
            self.norm = norm
            self.qkv = qkv
            self.proj = proj
            self.heads = heads
        }
    }

    /// dL/d of every parameter of a `TrainableUNetBlock`, summed over the images of the batch.
    /// Weights are in the layouts the block holds them (PyTorch's [out, in, k, k] and [out, in];
    /// qkv rows in [q | k | v] order). A gradient is nil where the block has no such parameter.
    public struct Gradients: Sendable {
        public var norm0Gamma: [Float]
        public var norm0Beta: [Float]
        public var conv0Weight: [Float]
        public var conv0Bias: [Float]?
        public var affineWeight: [Float]
        public var affineBias: [Float]?
        public var norm1Gamma: [Float]
        public var norm1Beta: [Float]
        public var conv1Weight: [Float]
        public var conv1Bias: [Float]?
        /// nil without a skip convolution, or when the skip only resamples (kernel 0).
        public var skipWeight: [Float]?
        public var skipBias: [Float]?
        /// The attention gradients are nil without attention.
        public var norm2Gamma: [Float]?
        public var norm2Beta: [Float]?
        public var qkvWeight: [Float]?
        public var qkvBias: [Float]?
        public var projWeight: [Float]?
        public var projBias: [Float]?
    }
}

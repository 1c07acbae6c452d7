import CSMNumerics

/// EDM's Conv2d for sampling: optional up/down resampling with a FIR filter around an optional
/// convolution (kernel 0 = resample only), plain or fused as EDM orders them. It keeps only
/// inference weights; `TrainableConv2d` is the same layer with raw weights and gradients.
struct SamplingConv2d: Sendable {
    /// The weights for im2col + GEMM (nil without a convolution, or when Winograd runs it).
    let weights: ConvolutionWeights?
    /// The 3×3 weights for Winograd's minimal filtering, when the layer is wide enough to gain.
    let winograd: WinogradWeights?
    let up: Bool
    let down: Bool
    let filter: ResampleFilter
    let fused: Bool

    var inputChannels: Int? { weights?.inputChannels ?? winograd?.inputChannels }

    func callAsFunction(_ input: FeatureMap) -> FeatureMap {
        var x = input
        let wPad = (weights?.kernel ?? 0) / 2
        let fPad = filter.padding
        if fused, let w = weights, up {
            x = filter.up(x, padding: wPad + fPad)
            return Convolution.apply(x, w, padding: 0)
        }
        if fused, let w = weights, down {
            x = Convolution.apply(x, w, padding: wPad + fPad)
            return filter.down(x, padding: 0)
        }
        if up { x = filter.up(x, padding: fPad) }
        if down { x = filter.down(x, padding: fPad) }
        if let w = winograd {
            x = Winograd.apply(x, w)
        } else if let w = weights {
            x = Convolution.apply(x, w, padding: wPad)
        }
        return x
    }

    /// (self(input) + residual)·scale: in the Winograd output transform where Winograd runs
    /// the layer, else as a pass after the convolution (the same floats either way).
    func callAsFunction(_ input: FeatureMap, adding residual: FeatureMap, scale: Float) -> FeatureMap {
        if let w = winograd, !up, !down {
            return Winograd.apply(input, w, residual: residual, scale: scale)
        }
        var y = self(input)
        y.addScaled(residual, scale: scale)
        return y
    }
}

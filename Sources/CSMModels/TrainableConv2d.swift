import CSMNumerics

/// EDM's Conv2d (`training/networks.py`) with its raw, PyTorch-layout parameters, for
/// training and gradients: the same forward as `SamplingConv2d` and its backward pass.
///
/// `SamplingConv2d` keeps only inference weights (packed for im2col or Winograd-transformed);
/// gradients need the weight as it is stored, [Cout, Cin, k, k], and run on oneDNN's direct
/// kernels (`DirectConvolution`), as training does. The layer is an optional
/// 2× FIR resampling around an optional convolution, in EDM's order:
///
/// - fused up (`fused`, `up`, k > 0): `filter.up(x, padding: k/2 + fPad)`, then the
///   convolution with padding 0;
/// - fused down (`fused`, `down`, k > 0): the convolution with padding k/2 + fPad, then
///   `filter.down(·, padding: 0)`;
/// - otherwise: `filter.up` or `filter.down` with padding fPad (if `up` or `down`), then the
///   convolution with padding k/2 (if k > 0);
///
/// where fPad = `filter.padding`. Kernel 0 means resampling only: no weight, no bias, as many
/// output channels as input channels.
public struct TrainableConv2d: Sendable {
    /// The convolution weight in PyTorch's layout [Cout, Cin, k, k]; empty when k = 0.
    public let weight: [Float]
    /// The convolution bias [Cout], if any (always nil when k = 0).
    public let bias: [Float]?
    public let inputChannels: Int
    public let outputChannels: Int
    /// The square kernel size k; 0 for resampling only.
    public let kernel: Int
    public let up: Bool
    public let down: Bool
    public let filter: ResampleFilter
    /// Resampling fused with the convolution into one padding, as EDM's `fused_resample`.
    public let fused: Bool
    /// The convolution step with the padding this layer's order gives it (nil when k = 0).
    let convolution: DirectConvolution?
    /// The filters of its input gradient, where it uses them (see `DirectConvolution`).
    let transposedWeight: [Float]?

    public init(weight: [Float], bias: [Float]?, inputChannels: Int, outputChannels: Int, kernel: Int,
                up: Bool = false, down: Bool = false, filter: ResampleFilter = ResampleFilter([1, 1]), fused: Bool = false) {
        kernelPrecondition(kernel >= 0 && inputChannels > 0 && outputChannels > 0,
                           "EDM convolution: kernel \(kernel), \(inputChannels)→\(outputChannels) channels")
        kernelPrecondition(!(up && down), "EDM convolution: up and down at once")
        kernelPrecondition(weight.count == outputChannels * inputChannels * kernel * kernel,
                           "EDM convolution: \(weight.count) weights for \(inputChannels)→\(outputChannels) channels, kernel \(kernel)")
        kernelPrecondition(kernel > 0 || (bias == nil && inputChannels == outputChannels),
                           "EDM convolution: kernel 0 (resampling only) takes no bias and keeps the channel count")
        kernelPrecondition((bias?.count ?? outputChannels) == outputChannels,
                           "EDM convolution: \(bias?.count ?? 0) biases for \(outputChannels) output channels")
        self.weight = weight
        self.bias = bias
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernel = kernel
        self.up = up
        self.down = down
        self.filter = filter
        self.fused = fused
        let padding = fused && up ? 0 : fused && down ? kernel / 2 + filter.padding : kernel / 2
        let convolution = kernel > 0
            ? DirectConvolution(inputChannels: inputChannels, outputChannels: outputChannels, kernel: kernel, padding: padding,
                                hasBias: bias != nil)
            : nil
        self.convolution = convolution
        transposedWeight = convolution?.transposedFlippedIfUsed(weight)
    }

    /// The convolution's own padding, k / 2.
    var weightPadding: Int { kernel / 2 }

    /// x: [n, H, W, Cin] → [n, H', W', Cout], as `SamplingConv2d` computes it.
    public func forward(_ x: FeatureMap) -> FeatureMap {
        checkInput(x)
        let fPad = filter.padding
        if fused, let c = convolution, up {
            return c.forward(filter.up(x, padding: weightPadding + fPad), weight: weight, bias: bias)
        }
        if fused, let c = convolution, down {
            return filter.down(c.forward(x, weight: weight, bias: bias), padding: 0)
        }
        let resampled = resample(x)
        guard let c = convolution else { return resampled }
        return c.forward(resampled, weight: weight, bias: bias)
    }

    /// The gradients of a loss L given dy = dL/dy for y = `forward(x)`: dL/dx [n, H, W, Cin],
    /// dL/dweight in PyTorch's layout [Cout, Cin, k, k] (nil when k = 0) and dL/dbias [Cout]
    /// (nil without a bias), summed over the images of x. Maps between the resampling and the
    /// convolution are recomputed from x.
    public func backward(_ dy: FeatureMap, input x: FeatureMap) -> (dx: FeatureMap, dWeight: [Float]?, dBias: [Float]?) {
        checkInput(x)
        kernelPrecondition(dy.hasConsistentShape && dy.count == x.count && dy.channels == outputChannels,
                           "EDM convolution gradient: dy has \(dy.count) images of \(dy.channels) channels, "
                           + "x has \(x.count) images and the layer \(outputChannels) outputs")
        let fPad = filter.padding
        if fused, let c = convolution, up {
            // y = conv(u, padding 0), u = up(x, padding p).
            let p = weightPadding + fPad
            let u = filter.up(x, padding: p)
            let du = c.inputGradient(dy, weight: weight, transposedWeight: transposedWeight, height: u.height, width: u.width)
            let dx = filter.upBackward(du, inputHeight: x.height, inputWidth: x.width, padding: p)
            let gradients = c.weightGradient(u, dy)
            return (dx, gradients.weight, gradients.bias)
        }
        if fused, let c = convolution, down {
            // y = down(h, padding 0), h = conv(x, padding p).
            let p = weightPadding + fPad
            let hh = Convolution.outputSize(x.height, kernel: kernel, stride: 1, padding: p)
            let hw = Convolution.outputSize(x.width, kernel: kernel, stride: 1, padding: p)
            let dh = filter.downBackward(dy, inputHeight: hh, inputWidth: hw, padding: 0)
            let dx = c.inputGradient(dh, weight: weight, transposedWeight: transposedWeight, height: x.height, width: x.width)
            let gradients = c.weightGradient(x, dh)
            return (dx, gradients.weight, gradients.bias)
        }
        // y = conv(r, padding k/2) (or y = r when k = 0), r = the resampled x (or x itself).
        var dr = dy
        var dWeight: [Float]?, dBias: [Float]?
        if let c = convolution {
            let r = resample(x)
            dr = c.inputGradient(dy, weight: weight, transposedWeight: transposedWeight, height: r.height, width: r.width)
            (dWeight, dBias) = c.weightGradient(r, dy)
        }
        let dx: FeatureMap
        if up {
            dx = filter.upBackward(dr, inputHeight: x.height, inputWidth: x.width, padding: fPad)
        } else if down {
            dx = filter.downBackward(dr, inputHeight: x.height, inputWidth: x.width, padding: fPad)
        } else {
            dx = dr
        }
        return (dx, dWeight, dBias)
    }

    /// The unfused resampling step: up or down with padding fPad, or x itself.
    func resample(_ x: FeatureMap) -> FeatureMap {
        if up { return filter.up(x, padding: filter.padding) }
        if down { return filter.down(x, padding: filter.padding) }
        return x
    }

    func checkInput(_ x: FeatureMap) {
        kernelPrecondition(x.hasConsistentShape && x.channels == inputChannels,
                           "EDM convolution: input has \(x.channels) channels, the layer takes \(inputChannels)")
    }
}

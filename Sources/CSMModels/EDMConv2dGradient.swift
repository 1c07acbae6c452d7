import CSMNumerics

/// EDM's Conv2d (`training/networks.py`) with its raw, PyTorch-layout parameters, for
/// training and gradients: the same forward as `EDMConv2d` and its backward pass.
///
/// `EDMConv2d` keeps only inference weights (packed for im2col or Winograd-transformed);
/// gradients need the weight as it is stored, [Cout, Cin, k, k]. The layer is an optional
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
public struct EDMConvolution: Sendable {
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
    /// `weight` and `bias` packed for `Convolution.apply` (nil when k = 0).
    let packed: ConvolutionWeights?

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
        packed = kernel > 0
            ? ConvolutionWeights(pytorch: weight, bias: bias, outputChannels: outputChannels, inputChannels: inputChannels, kernel: kernel)
            : nil
    }

    /// The convolution's own padding, k / 2.
    var weightPadding: Int { kernel / 2 }

    /// x: [n, H, W, Cin] → [n, H', W', Cout], as `EDMConv2d` computes it.
    public func forward(_ x: FeatureMap) -> FeatureMap {
        checkInput(x)
        let fPad = filter.padding
        if fused, let w = packed, up {
            return Convolution.apply(filter.up(x, padding: weightPadding + fPad), w, padding: 0)
        }
        if fused, let w = packed, down {
            return filter.down(Convolution.apply(x, w, padding: weightPadding + fPad), padding: 0)
        }
        let resampled = resample(x)
        guard let w = packed else { return resampled }
        return Convolution.apply(resampled, w, padding: weightPadding)
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
        if fused, let w = packed, up {
            // y = conv(u, padding 0), u = up(x, padding p).
            let p = weightPadding + fPad
            let u = filter.up(x, padding: p)
            let du = ConvolutionGradient.input(dy, w, height: u.height, width: u.width, stride: 1, padding: 0)
            let dx = filter.upBackward(du, inputHeight: x.height, inputWidth: x.width, padding: p)
            return (dx, weightGradient(u, dy, padding: 0), biasGradient(dy))
        }
        if fused, let w = packed, down {
            // y = down(c, padding 0), c = conv(x, padding p).
            let p = weightPadding + fPad
            let ch = Convolution.outputSize(x.height, kernel: kernel, stride: 1, padding: p)
            let cw = Convolution.outputSize(x.width, kernel: kernel, stride: 1, padding: p)
            let dc = filter.downBackward(dy, inputHeight: ch, inputWidth: cw, padding: 0)
            let dx = ConvolutionGradient.input(dc, w, height: x.height, width: x.width, stride: 1, padding: p)
            return (dx, weightGradient(x, dc, padding: p), biasGradient(dc))
        }
        // y = conv(r, padding k/2) (or y = r when k = 0), r = the resampled x (or x itself).
        var dr = dy
        var dWeight: [Float]?, dBias: [Float]?
        if let w = packed {
            let r = resample(x)
            dr = ConvolutionGradient.input(dy, w, height: r.height, width: r.width, stride: 1, padding: weightPadding)
            dWeight = weightGradient(r, dy, padding: weightPadding)
            dBias = biasGradient(dy)
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

    /// dL/dweight in PyTorch's layout for a convolution of `x` with `padding` and output gradient dy.
    func weightGradient(_ x: FeatureMap, _ dy: FeatureMap, padding: Int) -> [Float] {
        let packedGradient = ConvolutionGradient.weight(x, dy, kernel: kernel, stride: 1, padding: padding)
        return ConvolutionGradient.unpack(packedGradient, outputChannels: outputChannels, inputChannels: inputChannels, kernel: kernel)
    }

    /// dL/dbias from the convolution's output gradient, or nil without a bias.
    func biasGradient(_ dy: FeatureMap) -> [Float]? {
        guard bias != nil else { return nil }
        return ConvolutionGradient.bias(dy).map { Float($0) }
    }

    func checkInput(_ x: FeatureMap) {
        kernelPrecondition(x.hasConsistentShape && x.channels == inputChannels,
                           "EDM convolution: input has \(x.channels) channels, the layer takes \(inputChannels)")
    }
}

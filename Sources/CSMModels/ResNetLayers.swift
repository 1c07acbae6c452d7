import CSMFormats
import CSMNumerics

/// A ResNet convolution with its BatchNorm folded in: y = conv(x, w·γ/√(σ²+ε)) + (β − μ·γ/√(σ²+ε)),
/// optionally followed by ReLU.
struct ResNetConv: Sendable {
    let weights: ConvolutionWeights
    /// The same 3×3 weights for Winograd's F(2×2, 3×3), when stride is 1 and the layer is wide enough to gain
    /// (any channel count works).
    let winograd: WinogradWeights?
    let stride: Int
    let padding: Int
    let relu: Bool

    var outputChannels: Int { weights.outputChannels }

    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        var y: FeatureMap
        if let winograd {
            y = Winograd.apply(x, winograd)
        } else {
            y = Convolution.apply(x, weights, stride: stride, padding: padding)
        }
        if relu { y.applyReLU() }
        return y
    }
}

/// One residual block, torchvision style. Basic: conv3×3(stride s)-BN-ReLU-conv3×3-BN;
/// bottleneck: conv1×1-BN-ReLU-conv3×3(stride s)-BN-ReLU-conv1×1-BN. Then the shortcut
/// (identity, or 1×1 conv stride s + BN when the shape changes) is added and ReLU applied.
struct ResNetBlock: Sendable {
    let convs: [ResNetConv]
    let downsample: ResNetConv?

    func callAsFunction(_ x: FeatureMap) -> FeatureMap {
        var h = x
        for conv in convs { h = conv(h) }
        h.addReLU(downsample.map { $0(x) } ?? x)
        return h
    }
}

extension WeightReader {
    /// `conv` (a bias-free torchvision Conv2d) followed by BatchNorm `bn` in eval mode,
    /// folded into one convolution with bias.
    func foldedConv(_ spec: ResNetConvSpec) throws -> ResNetConv {
        let (conv, bn, inputs, outputs, kernel) = (spec.conv, spec.norm, spec.inputs, spec.outputs, spec.kernel)
        let (stride, padding, relu) = (spec.stride, spec.padding, spec.relu)
        let w = try tensor("\(conv).weight", [outputs, inputs, kernel, kernel])
        let gamma = try tensor("\(bn).weight", [outputs])
        let beta = try tensor("\(bn).bias", [outputs])
        let mean = try tensor("\(bn).running_mean", [outputs])
        let variance = try tensor("\(bn).running_var", [outputs])
        // Present in every torchvision state_dict, of whatever dtype; eval mode ignores it.
        _ = optional("\(bn).num_batches_tracked")
        let epsilon = 1e-5
        var folded = w
        var bias = [Float](repeating: 0, count: outputs)
        let per = inputs * kernel * kernel
        for co in 0..<outputs {
            guard variance[co].isFinite, Double(variance[co]) + epsilon > 0 else {
                throw FileError(path, "tensor '\(bn).running_var' has a negative or non-finite value")
            }
            let scale = Double(gamma[co]) / (Double(variance[co]) + epsilon).squareRoot()
            for i in 0..<per { folded[co * per + i] = Float(Double(w[co * per + i]) * scale) }
            bias[co] = Float(Double(beta[co]) - Double(mean[co]) * scale)
        }
        let weights = ConvolutionWeights(pytorch: folded, bias: bias, outputChannels: outputs, inputChannels: inputs, kernel: kernel)
        var winograd: WinogradWeights?
        if kernel == 3 && stride == 1 && padding == 1 && WinogradWeights.isWorthwhile(inputChannels: inputs, outputChannels: outputs) {
            winograd = WinogradWeights(pytorch: folded, bias: bias, outputChannels: outputs, inputChannels: inputs)
        }
        return ResNetConv(weights: weights, winograd: winograd, stride: stride, padding: padding, relu: relu)
    }
}

extension FeatureMap {
    /// max(0, x) in place.
    mutating func applyReLU() {
        let count = values.count
        values.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            for i in 0..<count { p[i] = max(0, p[i]) }
        }
    }

    /// self = max(0, self + other), elementwise.
    mutating func addReLU(_ other: FeatureMap) {
        kernelPrecondition(values.count == other.values.count, "residual: shapes disagree")
        let count = values.count
        values.withUnsafeMutableBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                let pa = a.baseAddress!, pb = b.baseAddress!
                for i in 0..<count { pa[i] = max(0, pa[i] + pb[i]) }
            }
        }
    }
}

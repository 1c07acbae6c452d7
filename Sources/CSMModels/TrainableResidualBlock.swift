import CSMNumerics

/// One trainable residual block, torchvision style (see `ResNetBlock`): basic (3×3 → 3×3) or
/// bottleneck (1×1 → 3×3 → 1×1), each conv followed by batch norm; the shortcut (identity or
/// 1×1 conv + bn) is added before the final ReLU.
final class TrainableResidualBlock {
    let layers: [TrainableConvBN]
    let downsample: TrainableConvBN?
    private var output: ChunkedActivations?

    init(layers: [TrainableConvBN], downsample: TrainableConvBN?) {
        self.layers = layers
        self.downsample = downsample
    }

    /// Every conv/bn pair in state_dict order (the shortcut's last).
    var pairs: [TrainableConvBN] { layers + (downsample.map { [$0] } ?? []) }

    func forwardTraining(_ x: ChunkedActivations) -> ChunkedActivations {
        let shortcut = downsample?.forwardTraining(x, relu: false) ?? x
        var h = x
        for layer in layers.dropLast() { h = layer.forwardTraining(h, relu: true) }
        let y = layers[layers.count - 1].forwardTraining(h, residual: shortcut, relu: true)
        output = y
        return y
    }

    /// dy is the gradient of the block's output; the final ReLU is undone by the last layer's
    /// and the shortcut's batch-norm backward (masked by the output), and on the identity
    /// shortcut together with the add of the two branches' gradients.
    func backward(_ dy: [FeatureMap]) -> [FeatureMap] {
        guard let mask = output?.all else { preconditionFailure("backward without a training forward") }
        output = nil
        var d = dy
        for (index, layer) in layers.enumerated().reversed() {
            let last = index == layers.count - 1
            guard let dx = layer.backward(d, reluOutput: last ? mask : nil) else { preconditionFailure("block layers always return an input gradient") }
            d = dx
        }
        if let downsample {
            guard let shortcut = downsample.backward(dy, reluOutput: mask) else { preconditionFailure("block layers always return an input gradient") }
            return BatchChunks.map(d.count) { Residual.add(d[$0], shortcut[$0]) }
        }
        return BatchChunks.map(d.count) { Residual.add(d[$0], reluGradient: dy[$0], output: mask[$0]) }
    }

    func forwardInference(_ x: FeatureMap) -> FeatureMap {
        let shortcut = downsample?.forwardInference(x, relu: false) ?? x
        var h = x
        for layer in layers.dropLast() { h = layer.forwardInference(h, relu: true) }
        return layers[layers.count - 1].forwardInference(h, residual: shortcut, relu: true)
    }
}

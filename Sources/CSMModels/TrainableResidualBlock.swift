import CSMNumerics

/// One trainable residual block, torchvision style (see `ResNetBlock`): basic (3×3 → 3×3) or
/// bottleneck (1×1 → 3×3 → 1×1), each conv followed by batch norm; the shortcut (identity or
/// 1×1 conv + bn) is added before the final ReLU.
final class TrainableResidualBlock {
    let layers: [TrainableConvBN]
    let downsample: TrainableConvBN?
    private var output: [FeatureMap] = []

    init(layers: [TrainableConvBN], downsample: TrainableConvBN?) {
        self.layers = layers
        self.downsample = downsample
    }

    /// Every conv/bn pair in state_dict order (the shortcut's last).
    var pairs: [TrainableConvBN] { layers + (downsample.map { [$0] } ?? []) }

    func forwardTraining(_ x: [FeatureMap]) -> [FeatureMap] {
        let shortcut = downsample?.forwardTraining(x, relu: false) ?? x
        var h = x
        for layer in layers.dropLast() { h = layer.forwardTraining(h, relu: true) }
        output = layers[layers.count - 1].forwardTraining(h, residual: shortcut, relu: true)
        return output
    }

    func backward(_ dy: [FeatureMap]) -> [FeatureMap] {
        let masked = BatchChunks.map(dy.count) { ReLU.backward(dy[$0], output: output[$0]) }
        output = []
        var d = masked
        for layer in layers.reversed() {
            guard let dx = layer.backward(d) else { preconditionFailure("block layers always return an input gradient") }
            d = dx
        }
        let shortcut = downsample.map { layer -> [FeatureMap] in
            guard let dx = layer.backward(masked) else { preconditionFailure("block layers always return an input gradient") }
            return dx
        } ?? masked
        return BatchChunks.map(d.count) { Residual.add(d[$0], shortcut[$0]) }
    }

    func forwardInference(_ x: FeatureMap) -> FeatureMap {
        let shortcut = downsample?.forwardInference(x, relu: false) ?? x
        var h = x
        for layer in layers.dropLast() { h = layer.forwardInference(h, relu: true) }
        return layers[layers.count - 1].forwardInference(h, residual: shortcut, relu: true)
    }
}

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

    /// The batch-norm sums of one chunk of the block's output gradient: the last layer's and
    /// the shortcut's.
    typealias Sums = (last: ([Double], [Double]), shortcut: ([Double], [Double])?)

    /// Makes chunk i of dy — dL/d(the block's output) — ready for `backward`, right after it
    /// is computed: the final ReLU undone in place (masked by the block's output), then the
    /// sums of the two batch norms that read it (the last layer's and the shortcut's).
    func prepareGradient(_ dy: inout FeatureMap, chunk i: Int) -> Sums {
        guard let output else { preconditionFailure("backward without a training forward") }
        let last = layers[layers.count - 1].prepareGradient(&dy, chunk: i, mask: output.chunk(i))
        return (last, downsample?.prepareGradient(&dy, chunk: i))
    }

    /// dy is the block's output gradient prepared chunk by chunk (`prepareGradient`, `sums`
    /// in chunk order). Once masked it is also the identity shortcut's gradient, added to the
    /// first layer's input gradient chunk by chunk; each chunk of the block's input gradient
    /// then goes to `next` (the block below prepares it) while it is in cache.
    func backward<Next>(_ dy: [FeatureMap], sums: [Sums], next: (Int, inout FeatureMap) -> Next) -> (dx: [FeatureMap], next: [Next]) {
        output = nil
        let shortcut: [FeatureMap]
        if let downsample {
            let partials = sums.compactMap(\.shortcut)
            precondition(partials.count == sums.count, "a downsampling block's gradient prepared without the shortcut's sums")
            shortcut = downsample.backward(dy, sums: partials) { _, _ in () }.dx
        } else {
            shortcut = dy
        }
        var d = dy
        var partials = sums.map(\.last)
        for index in stride(from: layers.count - 1, to: 0, by: -1) {
            let below = layers[index - 1]
            (d, partials) = layers[index].backward(d, sums: partials) { i, dx in below.prepareGradient(&dx, chunk: i) }
        }
        return layers[0].backward(d, sums: partials) { i, dx in
            Profiler.measure("residual") { dx.addScaled(shortcut[i], scale: 1) }
            return next(i, &dx)
        }
    }

    func forwardInference(_ x: FeatureMap) -> FeatureMap {
        let shortcut = downsample?.forwardInference(x, relu: false) ?? x
        var h = x
        for layer in layers.dropLast() { h = layer.forwardInference(h, relu: true) }
        return layers[layers.count - 1].forwardInference(h, residual: shortcut, relu: true)
    }
}

import CSMNumerics

/// A bias-free convolution followed by batch norm (torchvision's conv + bn pair), trainable:
/// training-mode forward over batch chunks keeps what the backward pass needs.
final class TrainableConvBN {
    let weight: Parameter
    let gamma: Parameter
    let beta: Parameter
    let runningMean: Parameter
    let runningVariance: Parameter
    let inputs: Int
    let outputs: Int
    let kernel: Int
    let stride: Int
    let padding: Int
    static let epsilon: Float = 1e-5

    // What the last training forward kept.
    private var input: [FeatureMap] = []
    private var convolved: [FeatureMap] = []
    private var reluOutput: ChunkedActivations?
    private var statistics: BatchNormStatistics?
    private let convolution: DirectConvolution

    init(name conv: String, _ bn: String, inputs: Int, outputs: Int, kernel: Int, stride: Int, padding: Int,
         weight: [Float], gamma: [Float], beta: [Float], mean: [Float], variance: [Float]) {
        self.inputs = inputs
        self.outputs = outputs
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        convolution = DirectConvolution(inputChannels: inputs, outputChannels: outputs, kernel: kernel, stride: stride, padding: padding,
                                        hasBias: false)
        self.weight = Parameter(name: "\(conv).weight", shape: [outputs, inputs, kernel, kernel], value: weight)
        self.gamma = Parameter(name: "\(bn).weight", shape: [outputs], value: gamma)
        self.beta = Parameter(name: "\(bn).bias", shape: [outputs], value: beta)
        runningMean = Parameter(name: "\(bn).running_mean", shape: [outputs], value: mean)
        runningVariance = Parameter(name: "\(bn).running_var", shape: [outputs], value: variance)
    }

    var parameters: [Parameter] { [weight, gamma, beta] }
    var buffers: [Parameter] { [runningMean, runningVariance] }

    /// conv → batch norm with batch statistics (→ + residual → ReLU); updates the running
    /// statistics. Without a residual, `prepareGradient` undoes the ReLU with the layer's own
    /// output; with one, the caller owns the ReLU (it passes the block's output to
    /// `prepareGradient` as the mask). Each chunk of
    /// `x` is taken (normalised, when it is the previous layer's output) right before its
    /// convolution, and its batch-norm sums right after, while it is in cache; the output is
    /// normalised chunk by chunk in the same way by whichever layer reads it next.
    func forwardTraining(_ x: ChunkedActivations, residual: ChunkedActivations? = nil, relu: Bool) -> ChunkedActivations {
        let w = weight.value
        let results = BatchChunks.map(x.count) { i -> (FeatureMap, FeatureMap, ([Double], [Double])) in
            let xi = x.chunk(i)
            let h = Profiler.measure("conv") { convolution.forward(xi, weight: w) }
            return (xi, h, Profiler.measure("bn-statistics") { BatchNorm.sumsAndSquares(h) })
        }
        input = results.map(\.0)
        convolved = results.map(\.1)
        let statistics = BatchNorm.batchStatistics(partials: results.map(\.2), count: convolved.reduce(0) { $0 + $1.count * $1.pixels },
                                                   epsilon: Self.epsilon)
        self.statistics = statistics
        BatchNorm.updateRunning(mean: &runningMean.value, variance: &runningVariance.value, with: statistics)
        let convolved = convolved, gamma = gamma.value, beta = beta.value
        let y = ChunkedActivations(count: convolved.count) { i in
            Profiler.measure("bn-forward") {
                BatchNorm.normalize(convolved[i], mean: statistics.mean, inverseStd: statistics.inverseStd, gamma: gamma, beta: beta,
                                    residual: residual?.chunk(i), relu: relu)
            }
        }
        reluOutput = relu && residual == nil ? y : nil
        return y
    }

    /// Makes chunk i of dy — dL/d(this layer's batch-norm output) — ready for `backward`,
    /// right after it is computed (while it is in cache): masked in place by the ReLU that
    /// followed (the forward's own, or the one after a residual add, whose output is then
    /// `mask`), with this layer's batch-norm sums of the chunk returned.
    func prepareGradient(_ dy: inout FeatureMap, chunk i: Int, mask: FeatureMap? = nil) -> ([Double], [Double]) {
        guard let statistics else { preconditionFailure("backward without a training forward") }
        return Profiler.measure("bn-backward") {
            BatchNorm.maskAndSum(&dy, x: convolved[i], reluOutput: mask ?? reluOutput?.chunk(i), statistics: statistics)
        }
    }

    /// Adds dL/dθ to the parameters' gradients, given dy prepared chunk by chunk
    /// (`prepareGradient`, its sums in chunk order), and returns dL/dx per chunk. Each chunk's
    /// batch-norm input gradient goes straight into the convolution's gradients, and its dx to
    /// `next` (to be prepared for the layer below), while they are in cache.
    func backward<Next>(_ dy: [FeatureMap], sums partials: [([Double], [Double])],
                        next: (Int, inout FeatureMap) -> Next) -> (dx: [FeatureMap], next: [Next]) {
        let results = chunkBackward(dy, sums: partials, needInput: true, next: next)
        return (results.map { $0.dx! }, results.map { $0.next! })
    }

    /// `backward` without dL/dx (the stem).
    func weightGradients(_ dy: [FeatureMap], sums partials: [([Double], [Double])]) {
        _ = chunkBackward(dy, sums: partials, needInput: false) { _, _ in () }
    }

    private func chunkBackward<Next>(_ dy: [FeatureMap], sums partials: [([Double], [Double])], needInput: Bool,
                                     next: (Int, inout FeatureMap) -> Next) -> [(dx: FeatureMap?, next: Next?)] {
        guard let statistics else { preconditionFailure("backward without a training forward") }
        let sums = BatchNormGradientSums(partials: partials)
        add(sums.gamma, to: gamma)
        add(sums.beta, to: beta)
        let h = input[0].height, w = input[0].width
        let weightValue = weight.value, gammaValue = gamma.value
        let transposedWeight = needInput ? convolution.transposedFlippedIfUsed(weightValue) : nil
        let results = BatchChunks.map(dy.count) { i -> ([Float], FeatureMap?, Next?) in
            let g = Profiler.measure("bn-backward") {
                BatchNorm.inputGradient(dy[i], x: convolved[i], gamma: gammaValue, statistics: statistics, sums: sums)
            }
            let dw = Profiler.measure("conv-dw") { convolution.weightGradient(input[i], g).weight }
            guard needInput else { return (dw, nil, nil) }
            var dx = Profiler.measure("conv-dx") {
                convolution.inputGradient(g, weight: weightValue, transposedWeight: transposedWeight, height: h, width: w)
            }
            let prepared = next(i, &dx)
            return (dw, dx, prepared)
        }
        add(BatchChunks.sum(results.map(\.0)), to: weight)
        input = []
        convolved = []
        reluOutput = nil
        self.statistics = nil
        return results.map { ($0.1, $0.2) }
    }

    /// Eval-mode forward of one chunk with the running statistics.
    func forwardInference(_ x: FeatureMap, residual: FeatureMap? = nil, relu: Bool) -> FeatureMap {
        let h = Profiler.measure("conv") { convolution.forward(x, weight: weight.value) }
        let inverseStd = runningVariance.value.map { 1 / ($0 + Self.epsilon).squareRoot() }
        return BatchNorm.normalize(h, mean: runningMean.value, inverseStd: inverseStd, gamma: gamma.value, beta: beta.value,
                                   residual: residual, relu: relu)
    }

    private func add(_ values: [Float], to parameter: Parameter) {
        for i in values.indices { parameter.gradient[i] += values[i] }
    }
}

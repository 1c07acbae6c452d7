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
    /// statistics. Without a residual, `relu` is undone inside `backward`; with one, the caller
    /// owns the ReLU (it passes the block's output to `backward` as the mask). Each chunk of
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

    /// Adds dL/dθ to the parameters' gradients and returns dL/dx per chunk (nil when not
    /// `needInput`, for the stem). `dy` is the gradient of the layer's output before a ReLU
    /// that followed it: the forward's own ReLU, or the one after a residual add, whose output
    /// is then `reluOutput` (dy is masked by it inside the batch-norm backward). Each chunk's
    /// batch-norm input gradient goes straight into the convolution's gradients, while it is
    /// in cache.
    func backward(_ dy: [FeatureMap], needInput: Bool = true, reluOutput mask: [FeatureMap]? = nil) -> [FeatureMap]? {
        guard let statistics else { preconditionFailure("backward without a training forward") }
        let reluOutput = mask ?? self.reluOutput?.all
        let sums = BatchNorm.parameterGradients(dy, x: convolved, reluOutput: reluOutput, statistics: statistics)
        add(sums.gamma, to: gamma)
        add(sums.beta, to: beta)
        let h = input[0].height, w = input[0].width
        let weightValue = weight.value, gammaValue = gamma.value
        let transposedWeight = needInput ? convolution.transposedFlippedIfUsed(weightValue) : nil
        let results = BatchChunks.map(dy.count) { i -> ([Float], FeatureMap?) in
            let g = Profiler.measure("bn-backward") {
                BatchNorm.inputGradient(dy[i], x: convolved[i], reluOutput: reluOutput?[i], gamma: gammaValue, statistics: statistics, sums: sums)
            }
            let dw = Profiler.measure("conv-dw") { convolution.weightGradient(input[i], g).weight }
            guard needInput else { return (dw, nil) }
            return (dw, Profiler.measure("conv-dx") { convolution.inputGradient(g, weight: weightValue, transposedWeight: transposedWeight, height: h, width: w) })
        }
        add(BatchChunks.sum(results.map(\.0)), to: weight)
        input = []
        convolved = []
        self.reluOutput = nil
        return needInput ? results.map { $0.1! } : nil
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

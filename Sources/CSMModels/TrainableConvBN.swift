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
    private var reluOutput: [FeatureMap]?
    private var statistics: BatchNormStatistics?
    private var packed: ConvolutionWeights?

    init(name conv: String, _ bn: String, inputs: Int, outputs: Int, kernel: Int, stride: Int, padding: Int,
         weight: [Float], gamma: [Float], beta: [Float], mean: [Float], variance: [Float]) {
        self.inputs = inputs
        self.outputs = outputs
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.weight = Parameter(name: "\(conv).weight", shape: [outputs, inputs, kernel, kernel], value: weight)
        self.gamma = Parameter(name: "\(bn).weight", shape: [outputs], value: gamma)
        self.beta = Parameter(name: "\(bn).bias", shape: [outputs], value: beta)
        runningMean = Parameter(name: "\(bn).running_mean", shape: [outputs], value: mean)
        runningVariance = Parameter(name: "\(bn).running_var", shape: [outputs], value: variance)
    }

    var parameters: [Parameter] { [weight, gamma, beta] }
    var buffers: [Parameter] { [runningMean, runningVariance] }

    /// True when the layer's 3×3 convolutions go through Winograd (forward, input and weight gradients).
    private var usesWinograd: Bool {
        kernel == 3 && stride == 1 && padding == 1 && WinogradWeights.supportsGradients(inputChannels: inputs, outputChannels: outputs)
    }

    private func convolve(_ x: [FeatureMap]) -> [FeatureMap] {
        let packed = ConvolutionWeights(pytorch: weight.value, bias: nil, outputChannels: outputs, inputChannels: inputs, kernel: kernel)
        self.packed = packed
        if usesWinograd {
            let w = Profiler.measure("winograd-weights") {
                WinogradWeights(training: weight.value, outputChannels: outputs, inputChannels: inputs, tile: Winograd.defaultTile, transposed: false)
            }
            return BatchChunks.map(x.count) { Winograd.apply(x[$0], w) }
        }
        return BatchChunks.map(x.count) { Convolution.apply(x[$0], packed, stride: stride, padding: padding) }
    }

    /// conv → batch norm with batch statistics (→ + residual → ReLU); updates the running
    /// statistics. With a residual the caller owns the ReLU's backward (`backward` gets dy
    /// already masked); without one, `relu` is undone inside `backward`.
    func forwardTraining(_ x: [FeatureMap], residual: [FeatureMap]? = nil, relu: Bool) -> [FeatureMap] {
        input = x
        convolved = convolve(x)
        let (y, statistics) = BatchNorm.trainingForward(convolved, gamma: gamma.value, beta: beta.value, epsilon: Self.epsilon,
                                                        residual: residual, relu: relu)
        self.statistics = statistics
        reluOutput = relu && residual == nil ? y : nil
        BatchNorm.updateRunning(mean: &runningMean.value, variance: &runningVariance.value, with: statistics)
        return y
    }

    /// Adds dL/dθ to the parameters' gradients and returns dL/dx per chunk (nil when not
    /// `needInput`, for the stem).
    func backward(_ dy: [FeatureMap], needInput: Bool = true) -> [FeatureMap]? {
        guard let statistics, let packed else { preconditionFailure("backward without a training forward") }
        let bn = BatchNorm.backward(dy, x: convolved, reluOutput: reluOutput, gamma: gamma.value, statistics: statistics)
        add(bn.gamma, to: gamma)
        add(bn.beta, to: beta)
        let h = input[0].height, w = input[0].width
        let transposed: WinogradWeights? = needInput && usesWinograd ? Profiler.measure("winograd-weights") {
            WinogradWeights(training: weight.value, outputChannels: outputs, inputChannels: inputs, tile: Winograd.defaultTile, transposed: true)
        } : nil
        let results = BatchChunks.map(dy.count) { i -> ([Float], FeatureMap?) in
            let dw = usesWinograd ? WinogradGradient.weight(input[i], bn.dx[i], tile: Winograd.defaultTile)
                                  : ConvolutionGradient.weight(input[i], bn.dx[i], kernel: kernel, stride: stride, padding: padding)
            guard needInput else { return (dw, nil) }
            if let transposed { return (dw, Winograd.apply(bn.dx[i], transposed)) }
            return (dw, ConvolutionGradient.input(bn.dx[i], packed, height: h, width: w, stride: stride, padding: padding))
        }
        let dw = ConvolutionGradient.unpack(BatchChunks.sum(results.map(\.0)), outputChannels: outputs, inputChannels: inputs, kernel: kernel)
        add(dw, to: weight)
        input = []
        convolved = []
        reluOutput = nil
        return needInput ? results.map { $0.1! } : nil
    }

    /// Eval-mode forward of one chunk with the running statistics.
    func forwardInference(_ x: FeatureMap, residual: FeatureMap? = nil, relu: Bool) -> FeatureMap {
        let packed = ConvolutionWeights(pytorch: weight.value, bias: nil, outputChannels: outputs, inputChannels: inputs, kernel: kernel)
        let h = Convolution.apply(x, packed, stride: stride, padding: padding)
        let inverseStd = runningVariance.value.map { 1 / ($0 + Self.epsilon).squareRoot() }
        return BatchNorm.normalize(h, mean: runningMean.value, inverseStd: inverseStd, gamma: gamma.value, beta: beta.value,
                                   residual: residual, relu: relu)
    }

    private func add(_ values: [Float], to parameter: Parameter) {
        for i in values.indices { parameter.gradient[i] += values[i] }
    }
}

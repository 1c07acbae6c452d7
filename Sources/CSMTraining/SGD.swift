import CSMNumerics

/// Stochastic gradient descent with momentum, computed as `torch.optim.SGD` does
/// (dampening 0):
///
///     d = g + weightDecay · θ
///     b = d                       on the first step,   b = momentum · b + d   after
///     d = d + momentum · b        with Nesterov,       d = b                  without
///     θ = θ − lr · d
///
/// Weight decay applies to every parameter. The momentum buffers are the optimiser's
/// state; `momentumBuffers` and `restore` save and reload it.
public final class SGD {
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    /// One buffer per parameter, empty until the first step.
    public private(set) var momentumBuffers: [[Float]]

    public init(parameterCount: Int, momentum: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        momentumBuffers = [[Float]](repeating: [], count: parameterCount)
    }

    /// Updates every parameter from its gradient with learning rate `lr`.
    public func step(_ parameters: [Parameter], lr: Float) {
        precondition(parameters.count == momentumBuffers.count, "SGD: \(parameters.count) parameters, \(momentumBuffers.count) buffers")
        for (index, parameter) in parameters.enumerated() {
            let first = momentumBuffers[index].isEmpty
            if momentum != 0 && first { momentumBuffers[index] = [Float](repeating: 0, count: parameter.count) }
            let momentum = self.momentum, decay = weightDecay, nesterov = self.nesterov
            parameter.value.withUnsafeMutableBufferPointer { theta in
                parameter.gradient.withUnsafeBufferPointer { g in
                    momentumBuffers[index].withUnsafeMutableBufferPointer { b in
                        for i in 0..<theta.count {
                            var d = decay != 0 ? g[i] + decay * theta[i] : g[i]
                            if momentum != 0 {
                                b[i] = first ? d : momentum * b[i] + d
                                d = nesterov ? d + momentum * b[i] : b[i]
                            }
                            theta[i] -= lr * d
                        }
                    }
                }
            }
        }
    }

    /// Replaces the momentum buffers (from a checkpoint): one per parameter, each empty or
    /// as long as its parameter.
    public func restore(momentumBuffers buffers: [[Float]], for parameters: [Parameter]) throws {
        guard buffers.count == parameters.count,
              zip(buffers, parameters).allSatisfy({ $0.0.isEmpty || $0.0.count == $0.1.count }) else {
            throw TrainingError("momentum buffers do not match the network's parameters")
        }
        momentumBuffers = buffers
    }
}

/// The L2 norm of all parameters' gradients together (NaN or +Inf when any is not finite).
public func gradientNorm(_ parameters: [Parameter]) -> Double {
    var sum = 0.0
    for parameter in parameters {
        var part = 0.0
        for g in parameter.gradient { part += Double(g) * Double(g) }
        sum += part
    }
    return sum.squareRoot()
}

/// Scales all gradients together so that their joint L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_` does: coefficient maxNorm / (norm + 1e-6), clamped at 1.
/// Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Double) -> Double {
    let norm = gradientNorm(parameters)
    let coefficient = Float(min(1, maxNorm / (norm + 1e-6)))
    if coefficient < 1 {
        for parameter in parameters {
            for i in parameter.gradient.indices { parameter.gradient[i] *= coefficient }
        }
    }
    return norm
}

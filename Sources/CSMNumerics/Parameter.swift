/// A trainable tensor: its values and the gradient of the loss with respect to them.
///
/// Networks own their parameters and hand them to an optimiser as a list in the order of
/// their `state_dict()` (torchvision's names); backward passes *add* into `gradient`, so a
/// training step starts with `zeroGradient()`.
public final class Parameter: @unchecked Sendable {
    /// The tensor's name in the model file (e.g. `layer1.0.conv1.weight`).
    public let name: String
    /// The tensor's shape as stored in the model file (PyTorch's layout).
    public let shape: [Int]
    /// The values, in the network's own internal layout (see `storedValues`).
    public var value: [Float]
    /// dLoss/dvalue, same layout and length as `value`.
    public var gradient: [Float]

    public init(name: String, shape: [Int], value: [Float]) {
        kernelPrecondition(shape.reduce(1, *) == value.count, "Parameter \(name): \(value.count) values for shape \(shape)")
        self.name = name
        self.shape = shape
        self.value = value
        self.gradient = [Float](repeating: 0, count: value.count)
    }

    /// Number of scalars.
    public var count: Int { value.count }

    /// Sets the gradient to zero.
    public func zeroGradient() {
        for i in gradient.indices { gradient[i] = 0 }
    }
}

import CSMModels
import CSMNumerics

/// What the training loop needs from a network: its parameters (in `state_dict` order),
/// the buffers it updates itself (batch-norm running statistics), a forward pass in
/// training mode whose backward pass adds into the parameters' gradients, a forward pass in
/// inference mode, and a way to save itself.
public protocol TrainableNetwork: AnyObject {
    /// How stored pixels become the network's input, and the image size it takes.
    var input: ResNetInput { get }
    /// One name per class; the logits have `classNames.count` columns.
    var classNames: [String] { get }
    /// Trainable tensors, in the order of the model file's `state_dict`.
    var parameters: [Parameter] { get }
    /// Tensors the forward pass updates (running statistics); saved, never optimised.
    var buffers: [Parameter] { get }
    /// Training-mode forward passes so far (PyTorch's `num_batches_tracked`).
    var batchesTracked: Int { get set }
    /// Logits [n, K] of normalised NHWC images, in training mode (batch statistics, running
    /// statistics updated); remembers what `backward` needs.
    func forwardTraining(_ x: FeatureMap) -> [Float]
    /// Features and logits [n, K] in inference mode (running statistics).
    func forwardInference(_ x: FeatureMap) -> (features: [Float], logits: [Float])
    /// Adds d loss / d parameters for the last `forwardTraining` to the parameters' gradients.
    func backward(_ logitsGradient: [Float])
    /// Writes the network as a model file with `metadata` added.
    func save(to path: String, metadata: [String: String]) throws
}

extension TrainableNetwork {
    /// Number of classes K.
    public var classCount: Int { classNames.count }

    /// Every tensor that makes up the network's state: parameters, then buffers.
    public var state: [Parameter] { parameters + buffers }
}

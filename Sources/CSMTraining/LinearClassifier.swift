import CSMFormats
import CSMLoader
import CSMModels
import CSMNumerics
import Foundation

/// Multinomial logistic regression on the normalised pixels: logits = W·x + b, with x the
/// image flattened in HWC order. A fast baseline, and the network the training loop's tests
/// train (its gradients are exact and cheap). Saved as `linear-classifier/1`: tensors
/// `weight` [K, H·W·C] and `bias` [K], metadata `input` and `class_names` as in
/// `resnet-classifier/1` (docs/formats/resnet-classifier.md).
public final class LinearClassifier: TrainableNetwork {
    public static let format = "linear-classifier/1"

    public let input: ResNetInput
    public let classNames: [String]
    public let parameters: [Parameter]
    public let buffers: [Parameter] = []
    public var batchesTracked = 0
    private var lastInput: FeatureMap?

    /// Input length D = H·W·C.
    public var inputLength: Int { input.height * input.width * input.channels }

    /// Initialised as PyTorch's `nn.Linear`: weight and bias uniform in ±1/√D, drawn from `seed`.
    public init(input: ResNetInput, classNames: [String], seed: UInt64) {
        self.input = input
        self.classNames = classNames
        let d = input.height * input.width * input.channels, k = classNames.count
        var random = LoaderRandom(seed, 0x4C49_4E45_4152)
        let bound = 1 / Float(d).squareRoot()
        func uniform() -> Float { (Float(random.next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
        parameters = [
            Parameter(name: "weight", shape: [k, d], value: (0..<(k * d)).map { _ in uniform() }),
            Parameter(name: "bias", shape: [k], value: (0..<k).map { _ in uniform() }),
        ]
    }

    /// Loads a `linear-classifier/1` file.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        try file.requireFormat(Self.format)
        guard let inputText = file.metadata["input"] else { throw FileError(path, "metadata has no 'input' entry") }
        input = try ResNetInput(json: inputText, path: path)
        guard let names = try file.metadataStrings("class_names"), !names.isEmpty else {
            throw FileError(path, "metadata has no 'class_names' entry")
        }
        classNames = names
        let d = input.height * input.width * input.channels, k = names.count
        parameters = [
            Parameter(name: "weight", shape: [k, d], value: try file.floats("weight", shape: [k, d])),
            Parameter(name: "bias", shape: [k], value: try file.floats("bias", shape: [k])),
        ]
        guard file.names == ["bias", "weight"] else {
            throw FileError(path, "unexpected tensors \(file.names.filter { $0 != "bias" && $0 != "weight" })")
        }
    }

    public func forwardTraining(_ x: FeatureMap) -> [Float] {
        lastInput = x
        batchesTracked += 1
        return logits(x)
    }

    public func forwardInference(_ x: FeatureMap) -> (features: [Float], logits: [Float]) {
        (x.values, logits(x))
    }

    public func backward(_ logitsGradient: [Float]) {
        guard let x = lastInput else { preconditionFailure("LinearClassifier.backward without forwardTraining") }
        let d = inputLength, k = classNames.count
        precondition(logitsGradient.count == x.count * k, "LinearClassifier.backward: gradient has \(logitsGradient.count) values")
        let weight = parameters[0], bias = parameters[1]
        weight.gradient.withUnsafeMutableBufferPointer { gw in
            x.values.withUnsafeBufferPointer { xs in
                for n in 0..<x.count {
                    for c in 0..<k {
                        let g = logitsGradient[n * k + c]
                        bias.gradient[c] += g
                        let row = c * d, input = n * d
                        for j in 0..<d { gw[row + j] += g * xs[input + j] }
                    }
                }
            }
        }
    }

    public func save(to path: String, metadata: [String: String]) throws {
        var meta = metadata
        meta["format"] = Self.format
        meta["input"] = input.json
        meta["class_names"] = ClassNames.json(classNames)
        try SafeTensorsWriter.write(parameters.map { .init(name: $0.name, shape: $0.shape, values: $0.value) }, metadata: meta, to: path)
    }

    private func logits(_ x: FeatureMap) -> [Float] {
        let d = inputLength, k = classNames.count
        precondition(x.values.count == x.count * d, "LinearClassifier: input is not \(x.count) images of \(d) values")
        var out = [Float](repeating: 0, count: x.count * k)
        let weight = parameters[0].value, bias = parameters[1].value
        weight.withUnsafeBufferPointer { w in
            x.values.withUnsafeBufferPointer { xs in
                for n in 0..<x.count {
                    for c in 0..<k {
                        var sum: Float = 0
                        for j in 0..<d { sum += w[c * d + j] * xs[n * d + j] }
                        out[n * k + c] = sum + bias[c]
                    }
                }
            }
        }
        return out
    }
}

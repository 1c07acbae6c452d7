import CSMCalibration
import CSMFormats
import CSMLoader
import CSMModels
import CSMNumerics
import Foundation

/// A classifier file (`resnet-classifier/1` or `linear-classifier/1`) run for its logits, as
/// `csm evaluate --classifier` and `csm pairs` run it on shards.
public struct ClassifierLogits {
    /// The classifier file.
    public let path: String
    /// The input it takes and how it normalises it.
    public let input: ResNetInput
    /// Its classes, in logit order.
    public let classNames: [String]
    /// Logits [count, K] of `count` images of uint8 HWC pixels.
    public let run: (_ pixels: [UInt8], _ count: Int) -> [Float]

    /// Reads the classifier at `path`, of either format.
    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw FileError(path, "no such file") }
        let file = try SafeTensorsFile(path: path)
        if file.metadata["format"] == LinearClassifier.format {
            let network = try LinearClassifier(path: path)
            input = network.input
            classNames = network.classNames
            let input = network.input
            run = { pixels, count in network.forwardInference(Self.normalize(pixels, count: count, input)).logits }
        } else {
            let network = try ResNetClassifier(file: file)
            input = network.input
            classNames = network.classNames
            run = { pixels, count in network.forward(pixels: pixels, count: count).logits }
        }
    }

    /// The classifier's logits on every sample of `data`, with their labels (real: the class;
    /// mixed: the argmax of the soft label).
    public func evaluationSet(data: String) throws -> EvaluationSet {
        let set = try ShardSet(path: data)
        guard set.height == input.height, set.width == input.width, set.channels == input.channels,
              set.numClasses == classNames.count else {
            throw FileError(data, "holds \(set.height)×\(set.width)×\(set.channels) images of \(set.numClasses) classes, but \(path) takes \(input.height)×\(input.width)×\(input.channels) images of \(classNames.count) classes")
        }
        guard set.classNames == classNames else {
            throw FileError(data, "classes \(set.classNames) differ from \(path)'s \(classNames)")
        }
        guard set.count > 0 else { throw FileError(data, "no samples") }
        var logits: [Float] = []
        logits.reserveCapacity(set.count * classNames.count)
        var labels: [Int] = []
        let chunk = 256
        for start in stride(from: 0, to: set.count, by: chunk) {
            let range = start..<min(set.count, start + chunk)
            var pixels: [UInt8] = []
            pixels.reserveCapacity(range.count * set.imageSize)
            for i in range {
                pixels += try set.image(i)
                if set.isReal(i) {
                    labels.append(Int(set.columns.classA[i]))
                } else {
                    let label = set.label(i)
                    labels.append(label.indices.max { label[$0] < label[$1] } ?? 0)
                }
            }
            logits += run(pixels, range.count)
        }
        return EvaluationSet(logitsPath: path, labelsPath: data, values: .float(logits), sampleCount: set.count,
                             classCount: classNames.count, labels: labels)
    }

    /// (pixel·scale − mean) / std, NHWC.
    static func normalize(_ pixels: [UInt8], count: Int, _ input: ResNetInput) -> FeatureMap {
        let c = input.channels
        var x = FeatureMap(uninitializedCount: count, height: input.height, width: input.width, channels: c)
        for i in 0..<pixels.count {
            let ch = i % c
            x.values[i] = (Float(pixels[i]) * input.scale - input.mean[ch]) / input.std[ch]
        }
        return x
    }
}

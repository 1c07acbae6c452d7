import CSMFormats
import CSMModels
import CSMShards
import Foundation

/// Class prototypes μ_k (docs/formats/csm-prototypes.md): the mean of a classifier's penultimate features φ over
/// the real images of class k. Stored as a safetensors file in the `csm-prototypes/1`
/// format: tensors `prototypes` F32 [K, F] and `counts` F32 [K]; metadata `format`,
/// `classifier_sha256`, `classifier` (file name), `class_names` (JSON) and `source`.
public struct ClassPrototypes: Sendable {
    /// The format name every prototypes file carries.
    public static let format = "csm-prototypes/1"

    /// μ_k, one row of F features per class.
    public let prototypes: [[Float]]
    /// Images averaged for each class.
    public let counts: [Float]
    /// SHA-256 of the classifier file the features came from, lowercase hex.
    public let classifierSHA256: String
    /// File name of that classifier.
    public let classifier: String
    /// One name per class.
    public let classNames: [String]
    /// Where the real images came from.
    public let source: String

    /// Number of classes K.
    public var numClasses: Int { prototypes.count }
    /// Feature length F.
    public var featureDimension: Int { prototypes.first?.count ?? 0 }

    public init(prototypes: [[Float]], counts: [Float], classifierSHA256: String, classifier: String, classNames: [String],
                source: String) {
        self.prototypes = prototypes
        self.counts = counts
        self.classifierSHA256 = classifierSHA256
        self.classifier = classifier
        self.classNames = classNames
        self.source = source
    }

    /// Loads and validates a prototypes file: format, metadata, tensor dtypes and shapes.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        try file.requireFormat(Self.format)
        guard let sha = file.metadata["classifier_sha256"], FileHash.isSHA256(sha) else {
            throw FileError(path, "metadata 'classifier_sha256' is missing or not a SHA-256")
        }
        guard let names = try file.metadataStrings("class_names"), !names.isEmpty else {
            throw FileError(path, "metadata 'class_names' is missing or empty")
        }
        let shape = try file.shape(of: "prototypes")
        guard shape.count == 2, shape[0] == names.count, shape[1] > 0 else {
            throw FileError(path, "tensor 'prototypes' has shape \(shape), expected [\(names.count), F]")
        }
        for name in ["prototypes", "counts"] where try file.entry(name).dtype != .f32 {
            throw FileError(path, "tensor '\(name)' is \(try file.entry(name).dtype.rawValue), expected F32")
        }
        let values = try file.finiteFloats("prototypes")
        let counts = try file.floats("counts", shape: [names.count])
        guard values.allSatisfy(\.isFinite) else { throw FileError(path, "tensor 'prototypes' holds non-finite values") }
        guard counts.allSatisfy({ $0 >= 0 && $0.isFinite }) else { throw FileError(path, "tensor 'counts' holds negative counts") }
        let f = shape[1]
        self.init(prototypes: (0..<names.count).map { Array(values[($0 * f)..<(($0 + 1) * f)]) }, counts: counts,
                  classifierSHA256: sha.lowercased(), classifier: file.metadata["classifier"] ?? "",
                  classNames: names, source: file.metadata["source"] ?? "")
    }

    /// Writes the prototypes to `path` (through `AtomicFile`).
    public func write(to path: String) throws {
        let k = numClasses, f = featureDimension
        try SafeTensorsWriter.write([
            .init(name: "prototypes", shape: [k, f], values: prototypes.flatMap { $0 }),
            .init(name: "counts", shape: [k], values: counts),
        ], metadata: ["format": Self.format, "classifier_sha256": classifierSHA256, "classifier": classifier,
                      "class_names": ClassNames.json(classNames), "source": source], to: path)
    }
}

/// Accumulates φ per class in float64 over batches of real images, then averages.
public struct ClassPrototypeAccumulator: Sendable {
    public let numClasses: Int
    public let featureDimension: Int
    private var sums: [Double]
    /// Images seen per class.
    public private(set) var counts: [Int]

    public init(numClasses: Int, featureDimension: Int) {
        self.numClasses = numClasses
        self.featureDimension = featureDimension
        sums = [Double](repeating: 0, count: numClasses * featureDimension)
        counts = [Int](repeating: 0, count: numClasses)
    }

    /// Adds features [n, F] of images whose classes are `labels` (each in 0..<K).
    public mutating func add(features: [Float], labels: [Int32]) {
        let f = featureDimension
        precondition(features.count == labels.count * f, "ClassPrototypeAccumulator: features do not match labels")
        for (row, label) in labels.enumerated() {
            let k = Int(label)
            precondition(k >= 0 && k < numClasses, "ClassPrototypeAccumulator: label \(k) out of range")
            counts[k] += 1
            for j in 0..<f { sums[k * f + j] += Double(features[row * f + j]) }
        }
    }

    /// μ_k per class (zeros for a class with no images).
    public var means: [[Float]] {
        (0..<numClasses).map { k in
            let n = Double(counts[k])
            return (0..<featureDimension).map { n > 0 ? Float(sums[k * featureDimension + $0] / n) : 0 }
        }
    }

    /// Runs `classifier` over every image of the real-data shard `reader` in batches of
    /// `batchSize`, adding the features by `class_a`. `progress` gets images done in this shard.
    public mutating func add(shard reader: ShardReader, classifier: ResNetClassifier, batchSize: Int = 256,
                             progress: ((Int) -> Void)? = nil) throws {
        let path = reader.path
        guard reader.metadata.kind == .real else {
            throw FileError(path, dataset: "kind", "is '\(reader.metadata.kind.rawValue)', prototypes need real data")
        }
        guard reader.numClasses == numClasses else {
            throw FileError(path, dataset: "num_classes", "is \(reader.numClasses), the classifier has \(numClasses) classes")
        }
        guard reader.height == classifier.inputHeight, reader.width == classifier.inputWidth,
              reader.channels == classifier.inputChannels else {
            throw FileError(path, dataset: "images", "are \(reader.height)×\(reader.width)×\(reader.channels), the classifier expects "
                             + "\(classifier.inputHeight)×\(classifier.inputWidth)×\(classifier.inputChannels)")
        }
        var start = 0
        while start < reader.count {
            let rows = start..<min(reader.count, start + max(1, batchSize))
            let labels = try reader.classA(rows: rows)
            if let bad = labels.first(where: { $0 < 0 || Int($0) >= numClasses }) {
                throw FileError(path, dataset: "class_a", "holds class \(bad), expected 0..<\(numClasses)")
            }
            let features = classifier.forward(pixels: try reader.images(rows: rows), count: rows.count).features
            add(features: features, labels: labels)
            start = rows.upperBound
            progress?(start)
        }
    }
}

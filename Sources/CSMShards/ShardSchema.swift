import CSMFormats
import CSMHDF5
import Foundation

/// The datasets of a `csm-shard/1` file, in the order the writer creates them.
public enum ShardDataset: String, CaseIterable, Sendable {
    /// uint8 [N, H, W, C]: pixels, HWC like PIL and torchvision.
    case images
    /// float32 [N, K]: the soft label (real data: one-hot).
    case labels
    /// int32 [N]: first class of the pair (real data: the class).
    case classA = "class_a"
    /// int32 [N]: second class of the pair (real data: −1).
    case classB = "class_b"
    /// float32 [N]: mixing ratio given to the network (real data: 1).
    case lambdaGen = "lambda_gen"
    /// float32 [N]: raw projection λ̂ (real data: NaN).
    case lambdaProj = "lambda_proj"
    /// float32 [N]: classifier probability of class a.
    case probA = "prob_a"
    /// float32 [N]: classifier probability of class b.
    case probB = "prob_b"
    /// uint8 [N]: classifier-consistency flag (0 or 1).
    case consistent
    /// int64 [N]: trajectory id (real data: −1).
    case group
    /// int64 [N]: seed of the latent (real data: −1).
    case seed

    /// The HDF5 dataset name.
    public var name: String { rawValue }

    /// The element type the schema requires.
    public var elementType: ShardElementType {
        switch self {
        case .images, .consistent: return .uint8
        case .labels, .lambdaGen, .lambdaProj, .probA, .probB: return .float32
        case .classA, .classB: return .int32
        case .group, .seed: return .int64
        }
    }

    /// Dimensions after the sample axis: [H, W, C] for images, [K] for labels, none otherwise.
    func rowShape(height: Int, width: Int, channels: Int, classes: Int) -> [Int] {
        switch self {
        case .images: return [height, width, channels]
        case .labels: return [classes]
        default: return []
        }
    }
}

/// Element types used by the schema: HDF5's little-endian integers and floats.
public typealias ShardElementType = HDF5ElementType

/// What a shard holds: `mixed` (generated, reannotated) or `real` (an imported dataset).
public enum ShardKind: String, Sendable, Codable {
    case mixed, real
}

/// The root attributes of a shard.
public struct ShardMetadata: Equatable, Sendable {
    /// The schema name written to every shard.
    public static let schema = "csm-shard/1"

    public var kind: ShardKind
    /// One name per class; `num_classes` is their count.
    public var classNames: [String]
    /// The sharpness s used to compute `labels` from `lambda_proj` (real data: NaN).
    public var sharpness: Double
    /// Generator settings as JSON text (model file name and SHA-256, sampler settings, …).
    public var generator: String
    /// Annotator settings as JSON text (classifier and prototypes SHA-256, δ, …).
    public var annotator: String
    /// This shard's position in the run, 0-based.
    public var shardIndex: Int
    /// Shards in the run.
    public var numShards: Int
    /// The tool and version that wrote the shard, e.g. "csm 0.1.0".
    public var createdBy: String

    /// Number of classes K.
    public var numClasses: Int { classNames.count }

    public init(kind: ShardKind, classNames: [String], sharpness: Double, generator: String = "{}", annotator: String = "{}",
                shardIndex: Int = 0, numShards: Int = 1, createdBy: String) {
        self.kind = kind
        self.classNames = classNames
        self.sharpness = sharpness
        self.generator = generator
        self.annotator = annotator
        self.shardIndex = shardIndex
        self.numShards = numShards
        self.createdBy = createdBy
    }

    /// Checks the values a shard must satisfy; `path` names the file in errors.
    func validate(path: String) throws {
        guard !classNames.isEmpty else { throw FileError(path, dataset: "class_names", "needs at least one class") }
        guard shardIndex >= 0, numShards >= 1, shardIndex < numShards else {
            throw FileError(path, dataset: "shard_index", "shard \(shardIndex) of \(numShards) is out of range")
        }
        for (name, text) in [("generator", generator), ("annotator", annotator)] where !isJSON(text) {
            throw FileError(path, dataset: name, "is not valid JSON")
        }
    }

    /// `class_names` as the JSON list stored in the file.
    var classNamesJSON: String { ClassNames.json(classNames) }
}

/// True when `text` parses as JSON (any value).
func isJSON(_ text: String) -> Bool {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
}

/// The per-sample columns of a shard, N samples of H×W×C images and K classes. Arrays
/// are row-major, in the schema's types.
public struct ShardSamples: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var channels: Int
    public var numClasses: Int
    /// [N, H, W, C].
    public var images: [UInt8]
    /// [N, K].
    public var labels: [Float]
    public var classA: [Int32]
    public var classB: [Int32]
    public var lambdaGen: [Float]
    public var lambdaProj: [Float]
    public var probA: [Float]
    public var probB: [Float]
    public var consistent: [UInt8]
    public var group: [Int64]
    public var seed: [Int64]

    public init(height: Int, width: Int, channels: Int, numClasses: Int, images: [UInt8], labels: [Float],
                classA: [Int32], classB: [Int32], lambdaGen: [Float], lambdaProj: [Float], probA: [Float], probB: [Float],
                consistent: [UInt8], group: [Int64], seed: [Int64]) {
        self.height = height
        self.width = width
        self.channels = channels
        self.numClasses = numClasses
        self.images = images
        self.labels = labels
        self.classA = classA
        self.classB = classB
        self.lambdaGen = lambdaGen
        self.lambdaProj = lambdaProj
        self.probA = probA
        self.probB = probB
        self.consistent = consistent
        self.group = group
        self.seed = seed
    }

    /// Number of samples N.
    public var count: Int { classA.count }

    /// Real images as shard columns (docs/formats/csm-shard.md): one-hot labels, class_a = the
    /// class, class_b = −1, lambda_gen = 1, lambda_proj = NaN, prob_a = 1, prob_b = 0,
    /// consistent = 1, group = seed = −1. `images` holds one H×W×C image per entry of `classes`.
    public static func real(height: Int, width: Int, channels: Int, numClasses: Int, images: [UInt8],
                            classes: [Int32]) -> ShardSamples {
        let n = classes.count
        var oneHot = [Float](repeating: 0, count: n * numClasses)
        for (row, label) in classes.enumerated() { oneHot[row * numClasses + Int(label)] = 1 }
        return ShardSamples(
            height: height, width: width, channels: channels, numClasses: numClasses, images: images, labels: oneHot,
            classA: classes, classB: [Int32](repeating: -1, count: n),
            lambdaGen: [Float](repeating: 1, count: n), lambdaProj: [Float](repeating: .nan, count: n),
            probA: [Float](repeating: 1, count: n), probB: [Float](repeating: 0, count: n),
            consistent: [UInt8](repeating: 1, count: n), group: [Int64](repeating: -1, count: n),
            seed: [Int64](repeating: -1, count: n))
    }

    /// Appends the samples of `other` (same image size and classes).
    public mutating func append(contentsOf other: ShardSamples) {
        images += other.images
        labels += other.labels
        classA += other.classA
        classB += other.classB
        lambdaGen += other.lambdaGen
        lambdaProj += other.lambdaProj
        probA += other.probA
        probB += other.probB
        consistent += other.consistent
        group += other.group
        seed += other.seed
    }

    /// How far a soft-label row's sum may lie from 1 (summed in Double).
    public static let labelSumTolerance = 1e-5

    /// Bytes of one image.
    public var imageSize: Int { height * width * channels }

    /// Checks the values that index anything or feed arithmetic, before anyone uses them
    /// (the images are not looked at): class_a and class_b lie in [−1, K) — and in [0, K)
    /// where they name a class: class_a always, class_b of mixed samples — and labels,
    /// lambda_gen, prob_a and prob_b are finite, lambda_proj is finite or NaN (no λ̂), and
    /// every labels row is a probability vector (non-negative, summing to 1 within
    /// `labelSumTolerance`). The first bad value becomes one `FileError` naming `path`, the
    /// dataset, the row (counted from `firstRow`) and the value.
    public func checkValues(path: String, kind: ShardKind, firstRow: Int = 0) throws {
        let k = numClasses
        func first<T>(_ values: [T], _ isBad: (T) -> Bool) -> (Int, T)? {
            values.firstIndex(where: isBad).map { ($0, values[$0]) }
        }
        func fail(_ dataset: ShardDataset, _ row: Int, _ value: Any, _ rule: String) -> FileError {
            FileError(path, dataset: dataset.name, "row \(firstRow + row) holds \(value), \(rule)")
        }
        let classRule = "expected a class in 0..<\(k)"
        if let (row, value) = first(classA, { $0 < 0 || Int($0) >= k }) { throw fail(.classA, row, value, classRule) }
        if kind == .mixed {
            if let (row, value) = first(classB, { $0 < 0 || Int($0) >= k }) { throw fail(.classB, row, value, classRule) }
        } else if let (row, value) = first(classB, { $0 < -1 || Int($0) >= k }) {
            throw fail(.classB, row, value, "expected −1 or a class in 0..<\(k)")
        }
        guard labels.count == count * k else {
            throw FileError(path, dataset: ShardDataset.labels.name, "holds \(labels.count) values, expected \(count) rows of \(k)")
        }
        if let index = labels.firstIndex(where: { !$0.isFinite }) {
            throw fail(.labels, index / max(1, k), labels[index], "expected finite numbers")
        }
        for row in 0..<count {
            let values = labels[(row * k)..<((row + 1) * k)]
            let sum = values.reduce(0) { $0 + Double($1) }
            guard values.allSatisfy({ $0 >= 0 }), abs(sum - 1) <= Self.labelSumTolerance else {
                let shown = values.prefix(10).map { String(format: "%.4g", $0) }.joined(separator: ", ") + (k > 10 ? ", …" : "")
                throw fail(.labels, row, "[\(shown)] (sum \(String(format: "%.7g", sum)))",
                           "expected non-negative numbers summing to 1 within \(Self.labelSumTolerance)")
            }
        }
        for (dataset, column) in [(ShardDataset.lambdaGen, lambdaGen), (.probA, probA), (.probB, probB)] {
            if let (row, value) = first(column, { !$0.isFinite }) { throw fail(dataset, row, value, "expected a finite number") }
        }
        if let (row, value) = first(lambdaProj, { $0.isInfinite }) { throw fail(.lambdaProj, row, value, "expected a finite number or NaN") }
    }

    /// Checks that every column holds N rows; `path` names the file in errors.
    func validate(path: String) throws {
        guard height > 0, width > 0, channels > 0 else { throw FileError(path, dataset: "images", "image size must be positive") }
        guard numClasses > 0 else { throw FileError(path, dataset: "labels", "needs at least one class") }
        let n = count
        let lengths: [(ShardDataset, Int, Int)] = [
            (.images, images.count, n * imageSize), (.labels, labels.count, n * numClasses),
            (.classB, classB.count, n), (.lambdaGen, lambdaGen.count, n), (.lambdaProj, lambdaProj.count, n),
            (.probA, probA.count, n), (.probB, probB.count, n), (.consistent, consistent.count, n),
            (.group, group.count, n), (.seed, seed.count, n),
        ]
        for (dataset, actual, expected) in lengths where actual != expected {
            throw FileError(path, dataset: dataset.name, "holds \(actual) values, expected \(expected) for \(n) samples")
        }
    }
}

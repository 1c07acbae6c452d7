import CSMFormats
import CSMModels
import CSMShards
import Foundation

/// The images of a shard set (`ShardPaths`' rule) as DAS inputs: pixels in the network's
/// range (uint8 / 127.5 − 1, EDM's convention) and the class vector the network is given:
/// one-hot for real data, λ·e_a + (1 − λ)·e_b for a mixed sample (λ = `lambda_gen`).
/// Image i is the i-th row counting across shards in the resolver's order
/// (docs/formats/attribution.md).
public struct AttributionImages {
    /// The resolved shard set.
    public let paths: ShardPaths
    /// One open reader per shard, in order.
    let readers: [ShardReader]
    /// Index of each shard's first image.
    let starts: [Int]
    /// Number of images.
    public let count: Int
    /// The network's class-vector length (0: unconditional).
    public let labelDimension: Int

    /// Opens every shard of `path` and checks that its images and classes fit `network`.
    public init(resolving path: String, for network: TrainableUNet) throws {
        let c = network.configuration
        try self.init(resolving: path, labelDimension: c.labelDimension)
        for reader in readers {
            guard reader.height == c.resolution, reader.width == c.resolution, reader.channels == c.channels else {
                throw FileError(reader.path, dataset: "images", "images are \(reader.height)×\(reader.width)×\(reader.channels) but the model "
                                + "takes \(c.resolution)×\(c.resolution)×\(c.channels)")
            }
            guard c.labelDimension == 0 || reader.numClasses == c.labelDimension else {
                throw FileError(reader.path, "has \(reader.numClasses) classes but the model's label_dim is \(c.labelDimension)")
            }
        }
    }

    /// Opens every shard of `path`, for class vectors of `labelDimension` values (0: none;
    /// pictures need only the pixels).
    public init(resolving path: String, labelDimension: Int = 0) throws {
        paths = try ShardPaths(resolving: path)
        var readers: [ShardReader] = [], starts: [Int] = [], total = 0
        for file in paths.files {
            let reader = try ShardReader(path: file)
            readers.append(reader)
            starts.append(total)
            total += reader.count
        }
        self.readers = readers
        self.starts = starts
        count = total
        self.labelDimension = labelDimension
    }

    /// What the set is, for the files' provenance: `{"manifest_sha256": …}` for a manifest,
    /// else `{"files": [names]}`.
    public func provenance() throws -> String {
        if let manifest = paths.manifestPath {
            return JSONValue.object(["manifest_sha256": .string(try FileHash.sha256(ofFile: manifest))]).jsonText
        }
        return JSONValue.object(["files": .array(paths.files.map { .string(($0 as NSString).lastPathComponent) })]).jsonText
    }

    /// Images `rows` (global indices): pixels (rows.count·H·W·C, network range) and class
    /// vectors (rows.count·label_dim).
    public func batch(_ rows: Range<Int>) throws -> (images: [Float], classLabels: [Float]) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= count, "AttributionImages: rows outside the set")
        var images: [Float] = [], labels: [Float] = []
        for (s, reader) in readers.enumerated() {
            let first = max(rows.lowerBound, starts[s]), end = min(rows.upperBound, starts[s] + reader.count)
            guard first < end else { continue }
            let range = (first - starts[s])..<(end - starts[s])
            images += try reader.images(rows: range).map { Float($0) / 127.5 - 1 }
            guard labelDimension > 0 else { continue }
            let columns = try reader.columns(rows: range)
            for i in 0..<range.count {
                var vector = [Float](repeating: 0, count: labelDimension)
                let a = Int(columns.classA[i]), b = Int(columns.classB[i])
                if reader.metadata.kind == .real || b < 0 {
                    vector[a] = 1
                } else {
                    let lambda = columns.lambdaGen[i]
                    vector[a] += lambda
                    vector[b] += 1 - lambda
                }
                labels += vector
            }
        }
        return (images, labels)
    }

    /// What image `index` shows, for pictures: its class name, or for a mixed sample
    /// "a <- b λ=…" with λ on class a.
    public func caption(_ index: Int) throws -> String {
        precondition(index >= 0 && index < count, "AttributionImages: image outside the set")
        let s = starts.lastIndex { $0 <= index }!
        let reader = readers[s], row = (index - starts[s])..<(index - starts[s] + 1)
        let columns = try reader.columns(rows: row), names = reader.metadata.classNames
        let a = names[Int(columns.classA[0])]
        guard reader.metadata.kind == .mixed, columns.classB[0] >= 0 else { return a }
        return "\(a) <- \(names[Int(columns.classB[0])]) λ=" + String(format: "%.2f", columns.lambdaGen[0])
    }

    /// The uint8 pixels of image `index` (H·W·C) and their height, width and channels, for pictures.
    public func pixels(_ index: Int) throws -> (pixels: [UInt8], height: Int, width: Int, channels: Int) {
        precondition(index >= 0 && index < count, "AttributionImages: image outside the set")
        let s = starts.lastIndex { $0 <= index }!
        let reader = readers[s]
        return (try reader.images(rows: (index - starts[s])..<(index - starts[s] + 1)), reader.height, reader.width, reader.channels)
    }
}

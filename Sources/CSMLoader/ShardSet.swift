import CSMFormats
import CSMShards
import Foundation

/// Samples of one or many csm-shard/1 files (mixed and real), opened through a manifest, a
/// directory holding one, a single shard, or a list of those. The small per-sample columns
/// are read at once; each shard's images are read (and checked through Fletcher-32) the first
/// time one of them is needed, then kept in memory.
public final class ShardSet: @unchecked Sendable {
    /// One shard file.
    public struct Shard: Sendable {
        /// Path of the shard file.
        public let path: String
        /// Its root attributes.
        public let metadata: ShardMetadata
        /// Index of its first sample in the set.
        public let offset: Int
        /// Samples in the shard.
        public let count: Int
    }

    /// The shard files, in the order their samples are numbered.
    public let shards: [Shard]
    /// Image height H.
    public let height: Int
    /// Image width W.
    public let width: Int
    /// Image channels C.
    public let channels: Int
    /// One name per class, shared by every shard.
    public let classNames: [String]

    /// The per-sample columns of the whole set (all but the images, which stay per shard):
    /// labels, class_a, class_b, lambda_gen, lambda_proj, prob_a, prob_b, consistent, group, seed.
    public let columns: ShardSamples
    /// Which shard each sample is in.
    public let shardOfSample: [Int32]
    /// The runs whose shards are not all here (see `ShardCoverage`); empty unless the set was
    /// opened with `allowIncomplete`.
    public let coverage: ShardCoverage

    /// Each shard's images, read on first use.
    private let imageSlots: [ImageSlot]

    /// Samples N over all shards.
    public var count: Int { columns.count }
    /// Number of classes K.
    public var numClasses: Int { classNames.count }
    /// Bytes of one image, H·W·C.
    public var imageSize: Int { height * width * channels }

    /// Opens `path`: a manifest.json, a directory with one, or a single shard (.h5).
    /// An incomplete run (its manifest lacks some of the run's shards) is an error naming
    /// the missing shard indices, unless `allowIncomplete`.
    public convenience init(path: String, allowIncomplete: Bool = false) throws {
        try self.init(paths: [path], allowIncomplete: allowIncomplete)
    }

    /// Opens several manifests, directories or shards as one set (same image size and
    /// classes). Manifests of one run complete each other (parts of a split run may be given
    /// together); a run that still lacks shards is an error unless `allowIncomplete`.
    public init(paths: [String], allowIncomplete: Bool = false) throws {
        let resolved = try paths.map { try ShardPaths(resolving: $0) }
        coverage = ShardCoverage(resolved)
        if !allowIncomplete { try coverage.requireComplete(remedy: "or open it with allowIncomplete: true") }
        let files = resolved.flatMap(\.files)
        guard !files.isEmpty else { throw FileError(paths.first ?? "", "no shards") }
        var shards: [Shard] = []
        var columns: ShardSamples?
        var shardOfSample: [Int32] = []
        var shape: (Int, Int, Int)?
        var names: [String]?
        for file in files {
            let reader = try ShardReader(path: file)
            if let shape, shape != (reader.height, reader.width, reader.channels) {
                throw FileError(file, dataset: "images", "image size \(reader.height)×\(reader.width)×\(reader.channels) differs from the other shards' \(shape.0)×\(shape.1)×\(shape.2)")
            }
            if let names, names != reader.metadata.classNames {
                throw FileError(file, dataset: "class_names", "classes differ from the other shards'")
            }
            shape = (reader.height, reader.width, reader.channels)
            names = reader.metadata.classNames
            shards.append(Shard(path: file, metadata: reader.metadata, offset: columns?.count ?? 0, count: reader.count))
            // Everything but the images, which are read on first use; values that index
            // anything are checked here, before any use.
            let part = try reader.columns()
            if columns == nil { columns = part } else { columns!.append(contentsOf: part) }
            shardOfSample += [Int32](repeating: Int32(shards.count - 1), count: reader.count)
        }
        self.shards = shards
        (height, width, channels) = shape ?? (0, 0, 0)
        classNames = names ?? []
        guard let columns else { throw FileError(paths.first ?? "", "no shards") }
        self.columns = columns
        self.shardOfSample = shardOfSample
        imageSlots = shards.map { _ in ImageSlot() }
    }


    /// True for samples of real data.
    public func isReal(_ i: Int) -> Bool { shards[Int(shardOfSample[i])].metadata.kind == .real }

    /// All images of shard `s` (read once, then cached).
    public func images(ofShard s: Int) throws -> [UInt8] {
        let path = shards[s].path
        return try imageSlots[s].images { try ShardReader(path: path).images() }
    }

    /// Reads every shard's images now (a warm cache).
    public func loadAllImages() throws {
        for s in shards.indices { _ = try images(ofShard: s) }
    }

    /// The uint8 HWC pixels of sample `i`.
    public func image(_ i: Int) throws -> ArraySlice<UInt8> {
        let s = Int(shardOfSample[i])
        let row = i - shards[s].offset
        return try images(ofShard: s)[(row * imageSize)..<((row + 1) * imageSize)]
    }

    /// The soft label of sample `i`: as stored, or re-derived from λ̂ for `sharpness`
    /// (`SoftLabel`: λ' on class a, 1 − λ' on class b; real data stays one-hot).
    public func label(_ i: Int, sharpness: Double? = nil) -> [Float] {
        let k = numClasses
        let c = columns
        guard let sharpness, !isReal(i), c.lambdaProj[i].isFinite else { return Array(c.labels[(i * k)..<((i + 1) * k)]) }
        return SoftLabel.label(classes: k, a: Int(c.classA[i]), b: Int(c.classB[i]), projection: Double(c.lambdaProj[i]),
                               sharpness: sharpness)
    }

    /// Indices of the samples that pass a filter.
    public func indices(consistentOnly: Bool = false, pairs: [(Int, Int)]? = nil, kind: ShardKind? = nil) -> [Int] {
        let c = columns
        return (0..<count).filter { i in
            if consistentOnly && c.consistent[i] == 0 { return false }
            if let kind, (isReal(i) ? ShardKind.real : .mixed) != kind { return false }
            if let pairs, !pairs.contains(where: { Int32($0.0) == c.classA[i] && Int32($0.1) == c.classB[i] || Int32($0.1) == c.classA[i] && Int32($0.0) == c.classB[i] }) {
                return false
            }
            return true
        }
    }
}

/// One shard's images, read once by whichever thread asks first while the others wait; each
/// shard has its own lock, so threads reading different shards do not wait for each other.
private final class ImageSlot: @unchecked Sendable {
    private let lock = NSLock()
    /// Guarded by `lock`.
    private var images: [UInt8]?

    /// The images, read by `read` on the first call (a failed read is retried next time).
    func images(_ read: () throws -> [UInt8]) throws -> [UInt8] {
        try lock.withLock {
            if let images { return images }
            let loaded = try read()
            images = loaded
            return loaded
        }
    }
}

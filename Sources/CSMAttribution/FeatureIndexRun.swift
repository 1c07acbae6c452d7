import CSMFormats
import CSMNumerics
import Foundation

/// A resumable, splittable `csm attribute index` run writing one features file.
///
/// The training set is cut into fixed chunks of `chunkSize` images. Each finished chunk's
/// features and weights go atomically to `.NAME.parts/chunk-NNNNNN.f32` beside the output
/// (little-endian float32: rows × k features, then the rows' weights), next to a
/// `config.json` naming the run. A killed run loses at most the chunk in progress; rerunning
/// it skips the finished chunks. Workers (`--shard-index/--num-shards`) take contiguous runs
/// of chunks into the same parts folder. Whichever run finds every chunk present writes the
/// features file (atomically, from the chunks alone, so its bytes do not depend on how the
/// work was split or interrupted) and removes the parts folder.
public struct FeatureIndexRun {
    /// What the parts folder was made for; a different configuration is refused.
    public struct Config: Codable, Equatable, Sendable {
        public var schema = "csm-attribution-index/1"
        public var metadata: AttributionFeatures.Metadata
        public var count: Int
        public var dimension: Int
        public var chunkSize: Int
    }

    /// The features file written at the end.
    public let out: String
    public let config: Config
    /// Where the chunks lie.
    public let partsDirectory: String

    public init(out: String, metadata: AttributionFeatures.Metadata, count: Int, dimension: Int, chunkSize: Int) {
        precondition(chunkSize >= 1 && count >= 0 && dimension >= 1, "FeatureIndexRun: invalid sizes")
        self.out = out
        config = Config(metadata: metadata, count: count, dimension: dimension, chunkSize: chunkSize)
        let url = URL(fileURLWithPath: out)
        partsDirectory = url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".parts").path
    }

    public var chunkCount: Int { (config.count + config.chunkSize - 1) / config.chunkSize }

    /// Images per chunk when the user gives none: as many as 2 GiB of gradients holds (a
    /// chunk keeps chunkSize × |θ| floats to project together, and P's generation is spread
    /// over them), at least 16 and at most 256. 256 for the default model (1.75 M parameters).
    public static func defaultChunkSize(parameterCount: Int) -> Int {
        max(16, min(256, (2 << 30) / (4 * max(1, parameterCount))))
    }

    /// The training images of chunk `chunk`.
    public func rows(ofChunk chunk: Int) -> Range<Int> {
        (chunk * config.chunkSize)..<min(config.count, (chunk + 1) * config.chunkSize)
    }

    /// Chunks of worker `index` of `count`: a contiguous run (possibly empty).
    public func chunks(ofWorker index: Int, of count: Int) -> Range<Int> {
        (chunkCount * index / count)..<(chunkCount * (index + 1) / count)
    }

    func chunkPath(_ chunk: Int) -> String {
        (partsDirectory as NSString).appendingPathComponent(String(format: "chunk-%06d.f32", chunk))
    }

    var configPath: String { (partsDirectory as NSString).appendingPathComponent("config.json") }

    /// Whether chunk `chunk` is finished.
    public func isDone(_ chunk: Int) -> Bool { FileManager.default.fileExists(atPath: chunkPath(chunk)) }

    /// Refuses an existing output or parts folder of another configuration; creates the parts
    /// folder. Returns false when the output already holds these features (nothing to do).
    public func prepare() throws -> Bool {
        if FileManager.default.fileExists(atPath: out) {
            let existing = try AttributionFeatures.readMetadata(path: out)
            guard existing == config.metadata else {
                throw FileError(out, "holds features of another configuration (model, data, noise levels, seeds, projection or weight "
                                + "differ); choose another --out or remove it")
            }
            // Chunks left by a run stopped between writing the file and removing them.
            try? FileManager.default.removeItem(atPath: partsDirectory)
            return false
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data = try encoder.encode(config)
        if FileManager.default.fileExists(atPath: configPath) {
            let existing = try? JSONDecoder().decode(Config.self, from: Data(contentsOf: URL(fileURLWithPath: configPath)))
            guard existing == config else {
                throw FileError(partsDirectory, "holds an unfinished index run of another configuration (or --batch); "
                                + "rerun it with its own options, or remove the folder")
            }
            return true
        }
        do {
            try FileManager.default.createDirectory(atPath: partsDirectory, withIntermediateDirectories: true)
        } catch {
            throw FileError(partsDirectory, "cannot create the folder for finished chunks")
        }
        try AtomicFile.write(data, to: configPath)
        return true
    }

    /// Stores chunk `chunk` (rows × k features, rows weights) atomically.
    public func writeChunk(_ chunk: Int, features: [Float], weights: [Float]) throws {
        let rows = rows(ofChunk: chunk).count
        precondition(features.count == rows * config.dimension && weights.count == rows, "FeatureIndexRun: chunk of the wrong size")
        // Little-endian float32 words, features then weights.
        var data = Data(count: 4 * (features.count + weights.count))
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt32.self)
            for (i, value) in features.enumerated() { words[i] = value.bitPattern.littleEndian }
            for (i, value) in weights.enumerated() { words[features.count + i] = value.bitPattern.littleEndian }
        }
        try AtomicFile.write(data, to: chunkPath(chunk))
    }

    /// Whether every chunk is finished.
    public var isComplete: Bool { (0..<chunkCount).allSatisfy(isDone) }

    /// Writes the features file from the chunks and removes the parts folder. Two workers
    /// finishing together may both get here: whichever finds the other's finished file
    /// (and its chunks gone) leaves it as it is.
    public func assemble(trainPath: String, createdBy: String) throws {
        let k = config.dimension
        var features = [Float](), weights = [Float]()
        features.reserveCapacity(config.count * k)
        for chunk in 0..<chunkCount {
            let rows = rows(ofChunk: chunk).count, path = chunkPath(chunk)
            guard let data = FileManager.default.contents(atPath: path), data.count == 4 * rows * (k + 1) else {
                if FileManager.default.fileExists(atPath: out), (try? AttributionFeatures.readMetadata(path: out)) == config.metadata { return }
                throw FileError(path, "is not a finished chunk of \(rows) rows × \(k) features; remove it and rerun")
            }
            let values = data.withUnsafeBytes { raw in
                (0..<(rows * (k + 1))).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            features += values[0..<(rows * k)]
            weights += values[(rows * k)...]
        }
        let result = AttributionFeatures(metadata: config.metadata, trainPath: trainPath, features: features,
                                         trainIndex: (0..<config.count).map(Int64.init), weights: weights, dimension: k)
        try result.write(to: out, createdBy: createdBy)
        try? FileManager.default.removeItem(atPath: partsDirectory)
    }
}

extension FeatureIndexRun {
    /// Computes and stores every unfinished chunk among `chunks`, one after the other:
    /// features of the images in `images` made by `featurizer`, with the training noise
    /// stream of its noise seed. A stop request (`Interruption`) ends the run between
    /// chunks, so every finished chunk is kept. `imageDone` is called (from worker threads)
    /// after each image. Returns the number of images indexed.
    @discardableResult
    public func index(_ chunks: Range<Int>, of images: AttributionImages, with featurizer: DASFeaturizer,
                      imageDone: @escaping @Sendable () -> Void = {}) throws -> Int {
        let noise = AttributionNoise(seed: featurizer.settings.noiseSeed)
        let size = featurizer.imageSize
        var indexed = 0
        for chunk in chunks where !isDone(chunk) {
            try Interruption.check()
            let rows = rows(ofChunk: chunk)
            let batch = try images.batch(rows)
            let result = featurizer.features(images: batch.images, classLabels: batch.classLabels, count: rows.count,
                                             noise: { i, t in noise.noise(.training, index: rows.lowerBound + i, level: t, count: size) },
                                             imageDone: imageDone)
            try Profiler.measure("das: writing") { try writeChunk(chunk, features: result.features, weights: result.weights) }
            indexed += rows.count
        }
        return indexed
    }
}

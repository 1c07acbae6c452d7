import CSMFormats
import CSMShards
import Foundation

/// Count, mean, standard deviation and extremes of a stream of numbers (non-finite values
/// are left out). Mergeable, so per-shard statistics combine exactly.
public struct RunningStatistics: Encodable, Equatable, Sendable {
    /// Numbers added.
    public private(set) var count = 0
    private var runningMean = 0.0
    private var squaredDeviations = 0.0
    /// Smallest number added.
    public private(set) var min: Double?
    /// Largest number added.
    public private(set) var max: Double?

    public init() {}

    /// The mean, or nil when empty.
    public var mean: Double? { count > 0 ? runningMean : nil }
    /// The population standard deviation, or nil when empty.
    public var standardDeviation: Double? { count > 0 ? (squaredDeviations / Double(count)).squareRoot() : nil }

    /// Adds `x` (ignored unless finite).
    public mutating func add(_ x: Double) {
        guard x.isFinite else { return }
        count += 1
        let delta = x - runningMean
        runningMean += delta / Double(count)
        squaredDeviations += delta * (x - runningMean)
        min = Swift.min(min ?? x, x)
        max = Swift.max(max ?? x, x)
    }

    /// Adds every number `other` has seen.
    public mutating func merge(_ other: RunningStatistics) {
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        let total = Double(count + other.count)
        let delta = other.runningMean - runningMean
        squaredDeviations += other.squaredDeviations + delta * delta * Double(count) * Double(other.count) / total
        runningMean += delta * Double(other.count) / total
        count += other.count
        min = Swift.min(min ?? .infinity, other.min ?? .infinity)
        max = Swift.max(max ?? -.infinity, other.max ?? -.infinity)
    }

    enum CodingKeys: String, CodingKey { case count, mean, std, min, max }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(count, forKey: .count)
        try container.encode(mean, forKey: .mean)
        try container.encode(standardDeviation, forKey: .std)
        try container.encode(min, forKey: .min)
        try container.encode(max, forKey: .max)
    }
}

/// Counts of numbers in equal-width bins over [lower, upper] (the last bin includes
/// `upper`), plus how many fell below and above. NaN is not counted.
public struct Histogram: Encodable, Equatable, Sendable {
    public let lower: Double
    public let upper: Double
    /// Counts per bin, from `lower` up.
    public private(set) var counts: [Int]
    /// Numbers below `lower`.
    public private(set) var below = 0
    /// Numbers above `upper`.
    public private(set) var above = 0

    /// An empty histogram of `bins` bins over [lower, upper].
    public init(lower: Double, upper: Double, bins: Int) {
        self.lower = lower
        self.upper = Swift.max(upper, lower + 1e-12)
        counts = [Int](repeating: 0, count: Swift.max(1, bins))
    }

    /// Width of one bin.
    public var binWidth: Double { (upper - lower) / Double(counts.count) }

    /// Counts `x`.
    public mutating func add(_ x: Double) {
        if x.isNaN { return }
        if x < lower {
            below += 1
        } else if x > upper {
            above += 1
        } else {
            counts[Swift.min(counts.count - 1, Int((x - lower) / binWidth))] += 1
        }
    }
}

/// What a set of csm-shard/1 files holds, from their per-sample columns (the images are
/// not read): sizes, classes and pairs, the distributions of λ_gen and λ̂ overall, per λ
/// level and per pair, the consistency rate, the entropy of the soft labels and the bytes
/// on disk. Encodes to JSON with `JSONEncoder` (snake_case keys with
/// `.convertToSnakeCase`); undefined numbers are null.
public struct DatasetSummary: Encodable, Sendable {
    /// Samples that share one value of λ_gen.
    public struct Level: Encodable, Equatable, Sendable {
        /// The λ_gen of the level (the bin centre when λ_gen takes too many values to list).
        public var lambdaGen: Double
        public var samples = 0
        /// Samples flagged consistent.
        public var consistent = 0
        /// λ̂ of the level's samples.
        public var lambdaProj = RunningStatistics()
    }

    /// The mixed samples of one class pair (a, b): λ_gen is the share of class a.
    public struct Pair: Encodable, Equatable, Sendable {
        public var classA: Int
        public var classB: Int
        /// Distinct groups (trajectories).
        public var groups: Int
        public var samples: Int
        public var consistent: Int
        /// λ̂ over the pair.
        public var lambdaProj: RunningStatistics
        /// One entry per λ level, in increasing λ_gen.
        public var levels: [Level]
    }

    /// The path summarised.
    public var path: String
    /// How the shards were found.
    public var source: ShardCollection.Source
    /// Shard files.
    public var shards: Int
    /// Shards the run has in all, when its manifest's configuration says (csm generate).
    public var expectedShards: Int?
    /// Shard indices of the run the manifest does not list: the dataset is incomplete.
    public var missingShards: [Int] = []
    public var samples = 0
    /// Samples of `mixed` shards.
    public var mixedSamples = 0
    /// Samples of `real` shards.
    public var realSamples = 0
    public var classNames: [String] = []
    /// [H, W, C] of the images.
    public var imageShape: [Int] = []
    /// Distinct groups (trajectories) of the mixed samples.
    public var groups = 0
    /// The class pairs of the mixed samples, in the order they first appear.
    public var pairs: [Pair] = []
    /// Mixed samples per λ level, in increasing λ_gen.
    public var levels: [Level] = []
    /// Whether λ_gen took more than `maximumLevels` values, so that `levels` are bins of 0.1.
    public var levelsBinned = false
    /// λ_gen of the mixed samples in 20 bins over [0, 1].
    public var lambdaGen = Histogram(lower: 0, upper: 1, bins: 20)
    /// λ̂ of the mixed samples in 32 bins over [−0.5, 1.5].
    public var lambdaProj = Histogram(lower: -0.5, upper: 1.5, bins: 32)
    /// λ̂ of the mixed samples.
    public var lambdaProjStatistics = RunningStatistics()
    /// Mixed samples without a λ̂ (NaN).
    public var lambdaProjMissing = 0
    /// Mixed samples flagged consistent.
    public var consistent = 0
    /// Samples per class of the real samples.
    public var realClassCounts: [Int] = []
    /// Entropy of the mixed samples' soft labels, in bits (a 50/50 label has 1 bit).
    public var labelEntropy = RunningStatistics()
    /// Distinct finite sharpness values of the shards.
    public var sharpness: [Double] = []
    /// Distinct `created_by` values of the shards.
    public var createdBy: [String] = []
    /// Size of the shard files.
    public var bytesOnDisk = 0
    /// Size of the shards' data uncompressed.
    public var rawBytes = 0

    /// The fraction of mixed samples flagged consistent, nil without mixed samples.
    public var consistencyRate: Double?

    /// Reads the per-sample columns of every shard in `collection` (not the images) and
    /// summarises them. Throws the first `FileError` (a missing, damaged or inconsistent shard).
    ///
    /// - Parameter progress: called after each shard with the number of shards read.
    public init(collection: ShardCollection, progress: ((Int) -> Void)? = nil) throws {
        path = collection.path
        source = collection.source
        shards = collection.members.count
        expectedShards = collection.manifest?.expectedShardCount
        missingShards = collection.coverage.gaps.first?.missing ?? []
        var accumulator = Accumulator()
        for (index, member) in collection.members.enumerated() {
            let reader = try ShardReader(path: member.path)
            if index == 0 {
                classNames = reader.metadata.classNames
                imageShape = [reader.height, reader.width, reader.channels]
                realClassCounts = [Int](repeating: 0, count: classNames.count)
            } else {
                guard reader.metadata.classNames == classNames else {
                    throw FileError(member.path, dataset: "class_names", "differ from those of \(collection.members[0].path)")
                }
                guard [reader.height, reader.width, reader.channels] == imageShape else {
                    throw FileError(member.path, dataset: "images", "differ in size from those of \(collection.members[0].path)")
                }
            }
            try add(reader, to: &accumulator)
            bytesOnDisk += ShardCollection.fileSize(member.path) ?? 0
            progress?(index + 1)
        }
        finish(accumulator)
    }

    // MARK: Accumulation

    /// Per-level and per-pair sums while reading.
    private struct Accumulator {
        /// Key: λ_gen in units of 10⁻⁴.
        var levels: [Int: Level] = [:]
        var pairOrder: [PairKey] = []
        var pairs: [PairKey: PairAccumulator] = [:]
        var groups = Set<Int64>()
    }

    private struct PairKey: Hashable {
        let a: Int32, b: Int32
    }

    private struct PairAccumulator {
        var groups = Set<Int64>()
        var samples = 0
        var consistent = 0
        var lambdaProj = RunningStatistics()
        var levels: [Int: Level] = [:]
    }

    private mutating func add(_ reader: ShardReader, to accumulator: inout Accumulator) throws {
        let n = reader.count, k = reader.numClasses
        samples += n
        rawBytes += n * (reader.height * reader.width * reader.channels + 4 * k + 4 * 2 + 4 * 4 + 1 + 8 * 2)
        let metadata = reader.metadata
        if metadata.sharpness.isFinite && !sharpness.contains(metadata.sharpness) { sharpness.append(metadata.sharpness) }
        if !createdBy.contains(metadata.createdBy) { createdBy.append(metadata.createdBy) }
        let classA = try reader.classA()
        if metadata.kind == .real {
            realSamples += n
            for a in classA where a >= 0 && Int(a) < realClassCounts.count { realClassCounts[Int(a)] += 1 }
            return
        }
        mixedSamples += n
        let classB = try reader.classB(), lambdaGen = try reader.lambdaGen(), lambdaProj = try reader.lambdaProj()
        let flags = try reader.consistent(), group = try reader.group(), labels = try reader.labels()
        for i in 0..<n {
            let gen = Double(lambdaGen[i]), proj = Double(lambdaProj[i])
            let isConsistent = flags[i] != 0
            consistent += isConsistent ? 1 : 0
            self.lambdaGen.add(gen)
            self.lambdaProj.add(proj)
            lambdaProjStatistics.add(proj)
            if proj.isNaN { lambdaProjMissing += 1 }
            labelEntropy.add(Self.entropyBits(labels[(i * k)..<((i + 1) * k)]))
            if group[i] >= 0 { accumulator.groups.insert(group[i]) }

            let levelKey = Int((gen * 10_000).rounded())
            Self.add(to: &accumulator.levels[levelKey, default: Level(lambdaGen: gen)], proj, isConsistent)
            let key = PairKey(a: classA[i], b: classB[i])
            // Taken out of the dictionary while it changes, so that its sets are not copied.
            var pair = accumulator.pairs.removeValue(forKey: key) ?? {
                accumulator.pairOrder.append(key)
                return PairAccumulator()
            }()
            pair.samples += 1
            pair.consistent += isConsistent ? 1 : 0
            pair.lambdaProj.add(proj)
            if group[i] >= 0 { pair.groups.insert(group[i]) }
            Self.add(to: &pair.levels[levelKey, default: Level(lambdaGen: gen)], proj, isConsistent)
            accumulator.pairs[key] = pair
        }
    }

    private static func add(to level: inout Level, _ proj: Double, _ isConsistent: Bool) {
        level.samples += 1
        level.consistent += isConsistent ? 1 : 0
        level.lambdaProj.add(proj)
    }

    private mutating func finish(_ accumulator: Accumulator) {
        groups = accumulator.groups.count
        consistencyRate = mixedSamples > 0 ? Double(consistent) / Double(mixedSamples) : nil
        levels = Self.ordered(accumulator.levels)
        levelsBinned = accumulator.levels.count > Self.maximumLevels
        pairs = accumulator.pairOrder.compactMap { key in
            guard let pair = accumulator.pairs[key] else { return nil }
            return Pair(classA: Int(key.a), classB: Int(key.b), groups: pair.groups.count, samples: pair.samples,
                        consistent: pair.consistent, lambdaProj: pair.lambdaProj, levels: Self.ordered(pair.levels))
        }
    }

    /// Most λ levels a summary lists; beyond it, λ_gen is binned in steps of 0.1.
    public static let maximumLevels = 24

    /// Levels in increasing λ_gen, binned to steps of 0.1 when there are too many.
    private static func ordered(_ levels: [Int: Level]) -> [Level] {
        var result = levels.sorted { $0.key < $1.key }.map(\.value)
        guard result.count > maximumLevels else { return result }
        var binned: [Int: Level] = [:]
        for level in result {
            let bin = Int((level.lambdaGen * 10).rounded())
            var merged = binned[bin] ?? Level(lambdaGen: Double(bin) / 10)
            merged.samples += level.samples
            merged.consistent += level.consistent
            merged.lambdaProj.merge(level.lambdaProj)
            binned[bin] = merged
        }
        result = binned.sorted { $0.key < $1.key }.map(\.value)
        return result
    }

    /// −Σ p·log₂ p over the positive entries of a label.
    static func entropyBits(_ label: ArraySlice<Float>) -> Double {
        label.reduce(0.0) { sum, p in p > 0 ? sum - Double(p) * log2(Double(p)) : sum }
    }
}

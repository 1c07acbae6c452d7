import CSMFormats
import CSMShards
import Foundation

/// Holds out a seeded random share of a shard set as shards of its own (`csm split`).
///
/// The `out` side gets round(fraction · N) samples drawn without replacement by
/// `LoaderRandom(seed, …)`; the `rest` side the others. Balanced, the draw is per class
/// (by `class_a`, also for mixed samples): the `out` total round(fraction · N) is spread over
/// the classes as evenly as their sizes allow (every class gets ⌊total / K⌋ or one more,
/// lower class ids first; a class too small to give its share gives all it has and the
/// others make up the difference). Both sides keep the input's order, so the selection is
/// a pure function of (seed, fraction, balanced, the data), and the two sides together are
/// the input, column for column.
///
/// Each side is written as ordinary csm-shard/1 shards `<kind>-<side>-NNNNN.h5` of at most
/// `shardSize` samples with the input's kind, class names, sharpness, generator and
/// annotator, plus a `manifest.json` whose config records the split (`SplitConfig`).
public struct ShardSplit: Sendable {
    /// Which side of the split.
    public enum Side: String, Codable, Sendable {
        /// The drawn share (`--out`).
        case out
        /// Everything else (`--rest`).
        case rest
    }

    /// What a split was made from and how: each side's manifest `config`.
    public struct SplitConfig: Codable, Equatable, Sendable {
        /// One source shard and its SHA-256.
        public struct Source: Codable, Equatable, Sendable {
            public var file: String
            public var sha256: String
        }

        /// Always "csm split".
        public var command = "csm split"
        /// The shard set as given.
        public var source: String
        /// Its shard files (as resolved) with their SHA-256.
        public var sourceShards: [Source]
        /// The source manifest's config, when the source had a manifest.
        public var sourceConfig: JSONValue?
        public var sourceSamples: Int
        public var fraction: Double
        public var seed: UInt64
        public var balanced: Bool
        public var side: Side
        /// Samples on this side.
        public var samples: Int
        /// Shards of this side (the loader checks that the manifest lists them all).
        public var numShards: Int

        enum CodingKeys: String, CodingKey {
            case command, source, fraction, seed, balanced, side, samples
            case sourceShards = "source_shards", sourceConfig = "source_config", sourceSamples = "source_samples"
            case numShards = "num_shards"
        }
    }

    /// What `run` did on one side.
    public struct Written: Sendable {
        public var directory: String
        public var samples: Int
        public var shards: Int
        /// True when the directory already held this very split (nothing was written).
        public var alreadyDone: Bool
    }

    public var fraction: Double
    public var seed: UInt64
    public var balanced: Bool
    /// Samples per shard written (the last may hold fewer).
    public var shardSize: Int
    /// The tool and version written as `created_by`.
    public var createdBy: String
    public var writer = ShardWriter()

    public init(fraction: Double, seed: UInt64 = 0, balanced: Bool = false, shardSize: Int = 10_000, createdBy: String) {
        self.fraction = fraction
        self.seed = seed
        self.balanced = balanced
        self.shardSize = shardSize
        self.createdBy = createdBy
    }

    // MARK: Selection

    /// The indices (ascending) of the samples of the `out` side, given each sample's class.
    public func select(classes: [Int32]) -> [Int] {
        let n = classes.count
        let total = Int((fraction * Double(n)).rounded())
        guard balanced else {
            var random = LoaderRandom(seed, 0x5350_4C49_54)
            return random.permutation(n).prefix(total).sorted()
        }
        var members: [Int32: [Int]] = [:]
        for (i, c) in classes.enumerated() { members[c, default: []].append(i) }
        let keys = members.keys.sorted()
        let counts = Self.evenCounts(total: total, sizes: keys.map { members[$0]!.count })
        var chosen: [Int] = []
        for (key, count) in zip(keys, counts) {
            let list = members[key]!
            var random = LoaderRandom(seed, 0x5350_4C49_54, UInt64(bitPattern: Int64(key)))
            chosen += random.permutation(list.count).prefix(count).map { list[$0] }
        }
        return chosen.sorted()
    }

    /// `total` spread over groups of `sizes` as evenly as they allow: each group gets
    /// ⌊share⌋ or one more (lower positions first), capped at its size, the shortfall of
    /// small groups spread over the others the same way.
    public static func evenCounts(total: Int, sizes: [Int]) -> [Int] {
        var counts = [Int](repeating: 0, count: sizes.count)
        var left = min(total, sizes.reduce(0, +))
        while left > 0 {
            let open = sizes.indices.filter { counts[$0] < sizes[$0] }
            let share = left / open.count, extra = left % open.count
            for (rank, g) in open.enumerated() {
                let add = min(sizes[g] - counts[g], share + (rank < extra ? 1 : 0))
                counts[g] += add
                left -= add
            }
        }
        return counts
    }

    // MARK: Writing

    /// Splits the shard set at `source` (anything `ShardPaths` resolves): the drawn share
    /// into `out`, the others into `rest` when given. `progress` gets samples written of all.
    /// A directory that already holds this very split is left as it is; one holding anything
    /// else (but hidden files) is refused, as are an empty side, a fraction outside (0, 1),
    /// and an output directory that is the other one or where the source lies.
    @discardableResult
    public func run(source: String, out: String, rest: String?, progress: ((Int, Int) -> Void)? = nil) throws -> [Written] {
        guard fraction > 0, fraction < 1 else { throw FileError(source, "the fraction \(fraction) must lie strictly between 0 and 1") }
        guard shardSize > 0 else { throw FileError(out, "shard size must be positive, got \(shardSize)") }
        let paths = try ShardPaths(resolving: source)
        try checkDistinct(source: source, sourceDirectory: paths.directory, out: out, rest: rest)
        let readers = try paths.files.map { try ShardReader(path: $0) }
        guard let first = readers.first else { throw FileError(source, "no shards") }
        for reader in readers.dropFirst() { try Self.checkSameRun(reader, as: first) }
        let classes = try readers.flatMap { try $0.classA() }
        let n = classes.count
        let chosen = select(classes: classes)
        if chosen.isEmpty { throw FileError(out, "would hold no samples: --fraction \(fraction) of \(n) samples in \(source)") }
        if chosen.count == n {
            throw FileError(rest ?? out, "--fraction \(fraction) of \(n) samples in \(source) takes them all: the rest would be empty")
        }
        let sourceShards = try paths.files.map { SplitConfig.Source(file: $0, sha256: try FileHash.sha256(ofFile: $0)) }
        var plans: [(side: Side, directory: String, rows: [Int], config: JSONValue, done: Bool)] = []
        for (side, directory, rows) in [(Side.out, out, chosen)] + (rest.map { [(Side.rest, $0, Self.complement(chosen, n))] } ?? []) {
            let config = SplitConfig(source: source, sourceShards: sourceShards, sourceConfig: paths.manifest?.config,
                                     sourceSamples: n, fraction: fraction, seed: seed, balanced: balanced, side: side,
                                     samples: rows.count, numShards: (rows.count + shardSize - 1) / shardSize)
            let json = try JSONValue(encoding: config)
            let done = Self.holdsFinished(directory, config: json)
            // Checked for both sides before either is written.
            if !done { try Self.requireEmptyOrOwn(directory, config: json) }
            plans.append((side, directory, rows, json, done))
        }
        var samples: ShardSamples?
        var written: [Written] = []
        var count = 0
        let total = plans.reduce(0) { $0 + $1.rows.count }
        for plan in plans {
            let shards = (plan.rows.count + shardSize - 1) / shardSize
            if !plan.done {
                let all = try samples ?? Self.readAll(readers)
                samples = all
                try write(all, rows: plan.rows, metadata: first.metadata, side: plan.side, config: plan.config,
                          numShards: shards, to: plan.directory) { count += $0; progress?(count, total) }
            } else {
                count += plan.rows.count
                progress?(count, total)
            }
            written.append(Written(directory: plan.directory, samples: plan.rows.count, shards: shards, alreadyDone: plan.done))
        }
        return written
    }

    /// The file name of shard `index` of `side` for shards of `kind`.
    public static func shardName(kind: ShardKind, side: Side, index: Int) -> String {
        String(format: "%@-%@-%05d.h5", kind.rawValue, side.rawValue, index)
    }

    private func write(_ samples: ShardSamples, rows: [Int], metadata source: ShardMetadata, side: Side, config: JSONValue,
                       numShards: Int, to directory: String, progress: (Int) -> Void) throws {
        let manifestPath = (directory as NSString).appendingPathComponent(ShardPaths.manifestName)
        var manifest = Manifest(config: config)
        for index in 0..<numShards {
            let part = rows[(index * shardSize)..<min(rows.count, (index + 1) * shardSize)]
            var metadata = source
            metadata.shardIndex = index
            metadata.numShards = numShards
            metadata.createdBy = createdBy
            let name = Self.shardName(kind: source.kind, side: side, index: index)
            let path = (directory as NSString).appendingPathComponent(name)
            try writer.write(samples.rows(part), metadata: metadata, to: path)
            manifest.record(Manifest.Shard(file: name, count: part.count, sha256: try FileHash.sha256(ofFile: path), shardIndex: index))
            try manifest.write(to: manifestPath)
            progress(part.count)
        }
    }

    /// Every sample of `readers`, in order.
    private static func readAll(_ readers: [ShardReader]) throws -> ShardSamples {
        var all = try readers[0].read()
        for reader in readers.dropFirst() { all.append(contentsOf: try reader.read()) }
        return all
    }

    /// 0..<n without `chosen` (ascending).
    static func complement(_ chosen: [Int], _ n: Int) -> [Int] {
        var taken = [Bool](repeating: false, count: n)
        for i in chosen { taken[i] = true }
        return (0..<n).filter { !taken[$0] }
    }

    /// Refuses `--out` equal to `--rest`, and an output directory that is the source or the
    /// directory its shards lie in.
    private func checkDistinct(source: String, sourceDirectory: String, out: String, rest: String?) throws {
        func canonical(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path }
        let taken = [canonical(source), canonical(sourceDirectory)]
        for (flag, directory) in [("--out", out)] + (rest.map { [("--rest", $0)] } ?? []) where taken.contains(canonical(directory)) {
            throw FileError(directory, "\(flag) is where the source shards lie; choose another folder")
        }
        if let rest, canonical(rest) == canonical(out) { throw FileError(rest, "--rest is the same folder as --out") }
    }

    /// Refuses a shard whose kind, classes, sharpness, generator or annotator differ from
    /// the first shard's: a split's outputs carry one set of metadata.
    private static func checkSameRun(_ reader: ShardReader, as first: ShardReader) throws {
        let a = reader.metadata, b = first.metadata
        let sameSharpness = a.sharpness == b.sharpness || (a.sharpness.isNaN && b.sharpness.isNaN)
        for (name, same) in [("kind", a.kind == b.kind), ("class_names", a.classNames == b.classNames), ("sharpness", sameSharpness),
                             ("generator", a.generator == b.generator), ("annotator", a.annotator == b.annotator),
                             ("images", (reader.height, reader.width, reader.channels) == (first.height, first.width, first.channels))]
        where !same {
            throw FileError(reader.path, dataset: name, "differs from \(first.path)'s; split the shards of one run at a time")
        }
    }

    /// Whether `directory` holds a complete split with exactly `config`, every shard's
    /// SHA-256 as its manifest says.
    private static func holdsFinished(_ directory: String, config: JSONValue) -> Bool {
        let manifestPath = (directory as NSString).appendingPathComponent(ShardPaths.manifestName)
        guard FileManager.default.fileExists(atPath: manifestPath) else { return false }
        guard let manifest = try? Manifest.read(from: manifestPath), manifest.config == config,
              manifest.missingShardIndices.isEmpty, manifest.shards.count == manifest.expectedShardCount else { return false }
        for shard in manifest.shards {
            let path = (directory as NSString).appendingPathComponent(shard.file)
            guard (try? FileHash.sha256(ofFile: path)) == shard.sha256 else { return false }
        }
        return true
    }

    /// Refuses a directory that holds anything but hidden files (a lock, temporary files)
    /// unless its manifest records this very split (an interrupted run, rewritten).
    private static func requireEmptyOrOwn(_ directory: String, config: JSONValue) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw FileError(directory, "cannot create the output folder")
            }
            return
        }
        guard isDirectory.boolValue else { throw FileError(directory, "is a file, not a folder") }
        let visible = try ShardPaths.list(directory).filter { !$0.hasPrefix(".") }
        guard !visible.isEmpty else { return }
        let manifestPath = (directory as NSString).appendingPathComponent(ShardPaths.manifestName)
        if let manifest = try? Manifest.read(from: manifestPath), manifest.config == config { return }
        throw FileError(directory, "is not empty and does not hold this split (another split, or other files); choose an empty folder")
    }
}

extension ShardSamples {
    /// The samples at `rows`, in that order.
    public func rows<C: Collection>(_ rows: C) -> ShardSamples where C.Element == Int {
        let size = imageSize, k = numClasses
        var result = ShardSamples(height: height, width: width, channels: channels, numClasses: k, images: [], labels: [],
                                  classA: [], classB: [], lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [],
                                  group: [], seed: [])
        result.images.reserveCapacity(rows.count * size)
        result.labels.reserveCapacity(rows.count * k)
        for i in rows {
            result.images += images[(i * size)..<((i + 1) * size)]
            result.labels += labels[(i * k)..<((i + 1) * k)]
            result.classA.append(classA[i])
            result.classB.append(classB[i])
            result.lambdaGen.append(lambdaGen[i])
            result.lambdaProj.append(lambdaProj[i])
            result.probA.append(probA[i])
            result.probB.append(probB[i])
            result.consistent.append(consistent[i])
            result.group.append(group[i])
            result.seed.append(seed[i])
        }
        return result
    }
}

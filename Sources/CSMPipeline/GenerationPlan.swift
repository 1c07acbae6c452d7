import CSMRandom
import Foundation

/// An ordered class pair: samples of the pair carry λ on `a` and 1 − λ on `b`.
public struct ClassPair: Hashable, Sendable, Codable, CustomStringConvertible {
    public let a: Int
    public let b: Int

    public init(_ a: Int, _ b: Int) {
        self.a = a
        self.b = b
    }

    public var description: String { "\(a):\(b)" }

    /// Every unordered pair (a, b), a < b, of `classCount` classes.
    public static func all(classCount: Int) -> [ClassPair] {
        (0..<classCount).flatMap { a in ((a + 1)..<classCount).map { ClassPair(a, $0) } }
    }

    /// Parses "all" or "A:B,C:D,…" (class indices or names, case-insensitive).
    public static func parse(_ text: String, classNames: [String]?, classCount: Int) throws -> [ClassPair] {
        if text.lowercased() == "all" { return all(classCount: classCount) }
        var pairs: [ClassPair] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 else {
                throw PlanError("pair '\(item)' is not of the form A:B (e.g. 7:9 or Sneaker:Ankle boot)")
            }
            let a = try classIndex(parts[0], classNames: classNames, classCount: classCount)
            let b = try classIndex(parts[1], classNames: classNames, classCount: classCount)
            guard a != b else { throw PlanError("pair '\(item)' mixes a class with itself") }
            let pair = ClassPair(a, b)
            guard !pairs.contains(pair) && !pairs.contains(ClassPair(b, a)) else { throw PlanError("pair '\(item)' is listed twice") }
            pairs.append(pair)
        }
        guard !pairs.isEmpty else { throw PlanError("no class pairs given") }
        return pairs
    }

    /// A class given by index or name.
    public static func classIndex(_ text: String, classNames: [String]?, classCount: Int) throws -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let index = Int(trimmed) {
            guard index >= 0 && index < classCount else { throw PlanError("class \(index) is out of range 0..<\(classCount)") }
            return index
        }
        if let names = classNames, let index = names.firstIndex(where: { $0.lowercased() == trimmed.lowercased() }) {
            return index
        }
        let known = classNames.map { ": " + $0.joined(separator: ", ") } ?? ""
        throw PlanError("unknown class '\(trimmed)' (give an index 0..<\(classCount)\(known))")
    }

    /// Parses one pair "A:B" (indices or names).
    public static func parseOne(_ text: String, classNames: [String]?, classCount: Int) throws -> ClassPair {
        let pairs = text.lowercased() == "all" ? [] : try parse(text, classNames: classNames, classCount: classCount)
        guard pairs.count == 1 else { throw PlanError("'\(text)': expected one pair A:B (e.g. 7:9 or Sneaker:Ankle boot)") }
        return pairs[0]
    }
}

/// What the samples of one class-mixing trajectory share and how they differ: one latent
/// (a Gaussian stream keyed by the trajectory's seed) and class vectors λ·e_a + (1−λ)·e_b at
/// λ = linspace(0, 1, L). `csm generate` and `csm sample --trajectory` both build their
/// inputs here.
public enum TrajectoryInputs {
    /// λ of sample `i` of a trajectory of `length` samples.
    public static func lambda(_ i: Int, length: Int) -> Float { Float(Double(i) / Double(length - 1)) }

    /// The class vector λ·e_a + (1−λ)·e_b of `classCount` classes.
    public static func classVector(_ pair: ClassPair, lambda: Float, classCount: Int) -> [Float] {
        var vector = [Float](repeating: 0, count: classCount)
        vector[pair.a] += lambda
        vector[pair.b] += 1 - lambda
        return vector
    }

    /// The latents of `seeds` (each `size` standard normal values of `GaussianStream(seed:)`),
    /// every one repeated `repeats` times in a row: a batch of trajectories of that length.
    public static func latents(seeds: [UInt64], size: Int, repeats: Int) -> [Float] {
        var values: [Float] = []
        values.reserveCapacity(seeds.count * repeats * size)
        for seed in seeds {
            let latent = GaussianStream(seed: seed).values(size)
            for _ in 0..<repeats { values += latent }
        }
        return values
    }
}

/// A planning error, one line for the command line.
public struct PlanError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Which samples a CSM run generates, and where each goes.
///
/// A group is one trajectory: `lambdas` samples sharing one latent, with λ =
/// linspace(0, 1, lambdas). Pair p gets `groupCounts[p]` groups (the same number each with
/// `--groups-per-pair`, or an allocation by `PairWeights`), numbered pair by pair. Shard file
/// k holds groups [k·G, (k+1)·G), G = groups per file, so a run split over workers writes
/// exactly the files of the single run. A group's latent is `GaussianStream(seed:
/// deriveSeed(seed, g))`: a pure function of (seed, g).
public struct GenerationPlan: Sendable, Equatable {
    public let pairs: [ClassPair]
    /// Groups (trajectories) of each pair, in the order of `pairs`.
    public let groupCounts: [Int]
    public let lambdas: Int
    public let seed: UInt64
    /// Groups per shard file.
    public let groupsPerShard: Int
    /// The first group of each pair, then the group count.
    private let groupStarts: [Int]

    /// The same number of groups for every pair.
    public init(pairs: [ClassPair], groupsPerPair: Int, lambdas: Int, seed: UInt64, shardSize: Int) throws {
        guard groupsPerPair >= 1 else { throw PlanError("--groups-per-pair must be at least 1") }
        try self.init(pairs: pairs, groupCounts: [Int](repeating: groupsPerPair, count: pairs.count), lambdas: lambdas, seed: seed,
                      shardSize: shardSize)
    }

    /// `groupCounts[p]` groups for pair p.
    public init(pairs: [ClassPair], groupCounts: [Int], lambdas: Int, seed: UInt64, shardSize: Int) throws {
        guard !pairs.isEmpty else { throw PlanError("no class pairs") }
        guard groupCounts.count == pairs.count, groupCounts.allSatisfy({ $0 >= 1 }) else {
            throw PlanError("every pair needs at least one group")
        }
        guard lambdas >= 2 else { throw PlanError("--lambdas must be at least 2") }
        guard shardSize >= lambdas else { throw PlanError("--shard-size \(shardSize) is smaller than one trajectory (\(lambdas) samples)") }
        self.pairs = pairs
        self.groupCounts = groupCounts
        self.lambdas = lambdas
        self.seed = seed
        self.groupsPerShard = shardSize / lambdas
        var starts = [0]
        for count in groupCounts { starts.append(starts.last! + count) }
        groupStarts = starts
    }

    public var groupCount: Int { groupStarts.last! }
    /// Groups per pair on average (exact when every pair has as many).
    public var groupsPerPair: Int { groupCount / pairs.count }
    public var sampleCount: Int { groupCount * lambdas }
    public var shardCount: Int { (groupCount + groupsPerShard - 1) / groupsPerShard }

    /// The groups of shard file `index`.
    public func groups(ofShard index: Int) -> Range<Int> {
        (index * groupsPerShard)..<min(groupCount, (index + 1) * groupsPerShard)
    }

    /// The shard files worker `index` of `count` writes: every count-th file.
    public func shards(ofWorker index: Int, of count: Int) -> [Int] {
        Array(stride(from: index, to: shardCount, by: count))
    }

    /// The pair group `group` belongs to.
    public func pair(ofGroup group: Int) -> ClassPair {
        var low = 0, high = pairs.count - 1      // the last pair whose first group is ≤ group
        while low < high {
            let middle = (low + high + 1) / 2
            if groupStarts[middle] <= group { low = middle } else { high = middle - 1 }
        }
        return pairs[low]
    }

    /// The seed of group `group`'s latent.
    public func latentSeed(ofGroup group: Int) -> UInt64 { deriveSeed(seed, UInt64(group)) }

    /// λ of sample `i` within a trajectory.
    public func lambda(_ i: Int) -> Float { TrajectoryInputs.lambda(i, length: lambdas) }

    /// The class vector of sample `i` of a group of `pair`.
    public func classVector(_ pair: ClassPair, sample i: Int, classCount: Int) -> [Float] {
        TrajectoryInputs.classVector(pair, lambda: lambda(i), classCount: classCount)
    }
}

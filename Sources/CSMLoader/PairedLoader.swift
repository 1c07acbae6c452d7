import Foundation

/// A batch as the CSM paper trains: real images with hard labels, and for each of them a
/// group of mixed images — the endpoint of the real sample's class from a trajectory that
/// contains it, plus `augmentations` interior members — with their soft targets.
public struct PairedBatch: Sendable {
    /// The real images with one-hot targets.
    public let real: Batch
    /// Hard labels of the real images.
    public let realLabels: [Int]
    /// count · (augmentations + 1) images, the group of real image j at rows j·(n+1) …;
    /// its first member is the endpoint. (Real images of a skipped unpaired class, and those
    /// a mixed share below 1 leaves out, have no group; the groups of the others follow each
    /// other in real-image order.)
    public let mixed: Batch
    /// Mixed images per real image: the endpoint plus the augmentations.
    public let groupSize: Int
}

/// Paired sampling over a real set and a mixed set (CSM's recipe). For real sample i of
/// class c: pick a trajectory whose pair contains c, take its endpoint of class c (λ = 1 when
/// c is class a, λ = 0 when c is class b) and `augmentations` members with 0 < λ < 1, all at
/// random but reproducibly from (seed, epoch, position).
///
/// Trajectories are the mixed samples given (`mixedIndices`, e.g. the consistent ones only)
/// grouped by `group` and sorted by λ_gen; their first and last members act as the endpoints
/// of class b and class a. When a filter dropped an endpoint, the extreme remaining member
/// takes its place; a trajectory with fewer than 2 members left is not used.
///
/// With `mixedShare` P < 1, each real sample brings its group with probability P only (an
/// independent draw from (seed, epoch, position)), so the share of mixed samples per batch
/// is set apart from `augmentations`; P = 1 gives the same batches as before the option.
public final class PairedLoader: @unchecked Sendable {
    /// Batches of the real set; they set the epoch's length and order.
    public let real: BatchLoader
    /// The mixed samples the groups are drawn from.
    public let mixed: ShardSet
    /// Interior trajectory members (0 < λ < 1) per real image.
    public let augmentations: Int
    /// Probability that a real image brings its mixed group, in (0, 1].
    public let mixedShare: Double
    /// Batch size, order, labels and transform (shared by both sets).
    public let options: LoaderOptions
    /// Classes of the real samples that no mixed trajectory contains (non-empty only with
    /// `skipUnpaired`); their real samples come without a mixed group.
    public let unpairedClasses: [Int]
    /// Trajectories (sample indices sorted by λ_gen) by class they contain.
    private let trajectoriesByClass: [[[Int]]]

    /// Pairs `real` with `mixed`; they must share classes and image size, and every class of
    /// the real samples needs a trajectory that contains it (else a `LoaderError` naming the
    /// classes), unless `skipUnpaired`.
    /// - Parameters:
    ///   - realIndices: the real samples to draw from (default: every real sample of `real`),
    ///     e.g. a training split.
    ///   - skipUnpaired: let real samples of a class no trajectory contains through without a
    ///     mixed group, instead of refusing the sets.
    ///   - mixedIndices: the mixed samples trajectories are built from (default: every mixed
    ///     sample of `mixed`), e.g. `mixed.indices(consistentOnly: true, kind: .mixed)`.
    ///   - mixedShare: probability in (0, 1] that a real sample brings its group.
    public init(real: ShardSet, mixed: ShardSet, augmentations: Int = 2, options: LoaderOptions = LoaderOptions(),
                realIndices: [Int]? = nil, skipUnpaired: Bool = false, mixedIndices: [Int]? = nil, mixedShare: Double = 1) throws {
        guard real.numClasses == mixed.numClasses, real.height == mixed.height, real.width == mixed.width,
              real.channels == mixed.channels else {
            throw LoaderError("real and mixed data differ in classes or image size")
        }
        guard mixedShare > 0, mixedShare <= 1 else { throw LoaderError("the mixed share \(mixedShare) must lie in (0, 1]") }
        self.mixedShare = mixedShare
        self.real = BatchLoader(real, indices: realIndices ?? real.indices(kind: .real), options: options)
        self.mixed = mixed
        self.augmentations = max(0, augmentations)
        self.options = options
        var members: [Int64: [Int]] = [:]
        for i in mixedIndices ?? mixed.indices(kind: .mixed) where !mixed.isReal(i) {
            members[mixed.columns.group[i], default: []].append(i)
        }
        var byClass = [[[Int]]](repeating: [], count: real.numClasses)
        for key in members.keys.sorted() {
            let trajectory = members[key]!.sorted { mixed.columns.lambdaGen[$0] < mixed.columns.lambdaGen[$1] }
            guard let first = trajectory.first, trajectory.count >= 2 else { continue }
            byClass[Int(mixed.columns.classA[first])].append(trajectory)
            byClass[Int(mixed.columns.classB[first])].append(trajectory)
        }
        let unpaired = Set(self.real.indices.map { Int(real.columns.classA[$0]) }).filter { byClass[$0].isEmpty }.sorted()
        if !unpaired.isEmpty && !skipUnpaired {
            let names = unpaired.map { "\($0) (\(real.classNames[$0]))" }.joined(separator: ", ")
            throw LoaderError("no mixed trajectory contains class\(unpaired.count == 1 ? "" : "es") \(names)")
        }
        unpairedClasses = unpaired
        trajectoriesByClass = byClass
    }

    /// Batches per epoch (those of the real loader).
    public var batchCount: Int { real.batchCount }

    /// The mixed samples chosen for real sample `index` at `position` of `epoch`:
    /// endpoint first, then the interior members; empty for an unpaired class, and when the
    /// `mixedShare` draw leaves the sample without its group.
    public func group(forReal index: Int, position: Int, epoch: Int) -> [Int] {
        if mixedShare < 1 {
            var share = LoaderRandom(options.seed, UInt64(epoch), UInt64(position), 0x5348_4152_45)
            guard Double(share.next() >> 11) * 0x1p-53 < mixedShare else { return [] }
        }
        let c = Int(real.set.columns.classA[index])
        var random = LoaderRandom(options.seed, UInt64(epoch), UInt64(position), 0x5041_4952)
        let candidates = trajectoriesByClass[c]
        guard !candidates.isEmpty else { return [] }
        let trajectory = candidates[random.next(below: candidates.count)]
        let endpoint = Int(mixed.columns.classA[trajectory[0]]) == c ? trajectory.last! : trajectory.first!
        let interior = Array(trajectory.dropFirst().dropLast())
        var chosen = [endpoint]
        for _ in 0..<augmentations {
            chosen.append(interior.isEmpty ? endpoint : interior[random.next(below: interior.count)])
        }
        return chosen
    }

    /// Paired batch `number` of `epoch`.
    public func batch(_ number: Int, epoch: Int, order: [Int]? = nil) throws -> PairedBatch {
        let order = order ?? real.order(epoch: epoch)
        let realBatch = try real.batch(number, epoch: epoch, order: order)
        let start = number * options.batchSize
        var chosen: [Int] = []
        for (j, i) in realBatch.indices.enumerated() { chosen += group(forReal: i, position: start + j, epoch: epoch) }
        // Mixed sample m of this batch takes the epoch's draws number start·(n + 1) + m: every
        // mixed sample of an epoch gets its own crop and flip.
        let mixedBatch = try mixed.batch(of: chosen, options: options, seed: options.seed ^ 0x4D49_5845, epoch: epoch,
                                         firstPosition: start * (augmentations + 1))
        return PairedBatch(real: realBatch, realLabels: realBatch.indices.map { Int(real.set.columns.classA[$0]) },
                           mixed: mixedBatch, groupSize: augmentations + 1)
    }

    /// The paired batches of `epoch`, prepared ahead on background threads.
    public func epoch(_ epoch: Int) -> Prefetcher<PairedBatch> {
        let order = real.order(epoch: epoch)
        return Prefetcher(count: batchCount, ahead: options.prefetch, threads: options.threads) { [self] number in
            try self.batch(number, epoch: epoch, order: order)
        }
    }
}

/// A loader error, one line.
public struct LoaderError: Error, CustomStringConvertible {
    /// What is wrong, one line.
    public let description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

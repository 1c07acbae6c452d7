import Dispatch
import Foundation

/// A batch of training inputs: images as float NCHW and soft-label targets.
public struct Batch: Sendable {
    /// Indices of the samples in the set.
    public let indices: [Int]
    /// count · C · H · W floats.
    public let images: [Float]
    /// count · K floats.
    public let targets: [Float]
    /// Image channels C.
    public let channels: Int
    /// Image height H.
    public let height: Int
    /// Image width W.
    public let width: Int
    /// Samples in the batch.
    public var count: Int { indices.count }
}

/// Options shared by the loaders.
public struct LoaderOptions: Sendable {
    /// Samples per batch (at least 1).
    public var batchSize: Int
    /// Whether each epoch visits the samples in a new random order.
    public var shuffle: Bool
    /// Seed of the order and augmentation draws.
    public var seed: UInt64
    /// Whether a last, smaller batch is left out.
    public var dropLast: Bool
    /// Re-derive soft labels from λ̂ with this sharpness (nil: the stored labels).
    public var sharpness: Double?
    /// How pixels become inputs (scale, normalisation, crop, flip).
    public var transform: ImageTransform
    /// Batches prepared ahead on background threads.
    public var prefetch: Int
    /// Background threads.
    public var threads: Int

    /// Options; `batchSize`, `prefetch` and `threads` are raised to at least 1.
    public init(batchSize: Int = 128, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false, sharpness: Double? = nil,
                transform: ImageTransform = ImageTransform(), prefetch: Int = 4,
                threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)) {
        self.batchSize = max(1, batchSize)
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
        self.sharpness = sharpness
        self.transform = transform
        self.prefetch = max(1, prefetch)
        self.threads = max(1, threads)
    }
}

/// Batches over a `ShardSet` (or a filtered part of it), epoch by epoch. A batch is a pure
/// function of (seed, epoch, batch number): the order, crops and flips are the same whatever
/// the number of prefetch threads.
public final class BatchLoader: @unchecked Sendable {
    /// The samples loaded.
    public let set: ShardSet
    /// The indices of `set` this loader visits.
    public let indices: [Int]
    /// Batch size, order, labels and transform.
    public let options: LoaderOptions

    /// `indices` restricts the loader to those samples (e.g. `set.indices(consistentOnly: true)`).
    public init(_ set: ShardSet, indices: [Int]? = nil, options: LoaderOptions = LoaderOptions()) {
        self.set = set
        self.indices = indices ?? Array(0..<set.count)
        self.options = options
    }

    /// Batches per epoch.
    public var batchCount: Int {
        options.dropLast ? indices.count / options.batchSize : (indices.count + options.batchSize - 1) / options.batchSize
    }

    /// The sample order of `epoch`.
    public func order(epoch: Int) -> [Int] {
        guard options.shuffle else { return indices }
        var random = LoaderRandom(options.seed, UInt64(epoch), 0x5348_5546)
        return random.permutation(indices.count).map { indices[$0] }
    }

    /// Batch `number` of `epoch`, built on the calling thread.
    public func batch(_ number: Int, epoch: Int, order: [Int]? = nil) throws -> Batch {
        let order = order ?? self.order(epoch: epoch)
        let start = number * options.batchSize
        guard number >= 0, start < order.count else {
            throw LoaderError("batch \(number) does not exist: an epoch has \(batchCount) batches")
        }
        let chosen = Array(order[start..<min(order.count, start + options.batchSize)])
        return try set.batch(of: chosen, options: options, seed: options.seed, epoch: epoch, firstPosition: start)
    }

    /// The batches of `epoch`, prepared ahead on background threads.
    public func epoch(_ epoch: Int) -> Prefetcher<Batch> {
        let order = self.order(epoch: epoch)
        return Prefetcher(count: batchCount, ahead: options.prefetch, threads: options.threads) { [self] number in
            try self.batch(number, epoch: epoch, order: order)
        }
    }
}

extension ShardSet {
    /// Samples `chosen` as a batch, sample j transformed with the draws of
    /// `LoaderRandom(seed, epoch, firstPosition + j)`: a batch is a pure function of its
    /// arguments, whichever thread builds it.
    func batch(of chosen: [Int], options: LoaderOptions, seed: UInt64, epoch: Int, firstPosition: Int) throws -> Batch {
        let per = imageSize, k = numClasses
        var images = [Float](repeating: 0, count: chosen.count * per)
        var targets = [Float](repeating: 0, count: chosen.count * k)
        try images.withUnsafeMutableBufferPointer { out in
            for (j, i) in chosen.enumerated() {
                var random = LoaderRandom(seed, UInt64(epoch), UInt64(firstPosition + j))
                options.transform.apply(try image(i), height: height, width: width, channels: channels,
                                        random: &random, into: out.baseAddress! + j * per)
                let label = label(i, sharpness: options.sharpness)
                for c in 0..<k { targets[j * k + c] = label[c] }
            }
        }
        return Batch(indices: chosen, images: images, targets: targets, channels: channels, height: height, width: width)
    }
}

/// Produces items 0..<count on background threads, at most `ahead` beyond the consumer,
/// and hands them out in order through `next()`, which throws a producer's error (a damaged
/// shard, say) where it happens: an epoch never just ends early. Iterate with
/// `while let item = try prefetcher.next() { … }`.
public final class Prefetcher<Item>: @unchecked Sendable {
    private let count: Int
    private let ahead: Int
    private let make: (Int) throws -> Item
    private let queue: DispatchQueue
    private let slots: DispatchSemaphore
    private let lock = NSCondition()
    private var results: [Int: Result<Item, Error>] = [:]
    private var position = 0
    private var scheduled = 0
    /// The first error met: every later `next()` throws it again.
    private var failure: Error?

    init(count: Int, ahead: Int, threads: Int, make: @escaping (Int) throws -> Item) {
        self.count = count
        self.ahead = ahead
        self.make = make
        queue = DispatchQueue(label: "csm.prefetch", attributes: .concurrent)
        slots = DispatchSemaphore(value: threads)
        lock.lock()
        scheduleLocked()
        lock.unlock()
    }

    private func scheduleLocked() {
        while scheduled < count && scheduled < position + ahead {
            let number = scheduled
            scheduled += 1
            queue.async { [self] in
                slots.wait()
                let result = Result { try make(number) }
                slots.signal()
                lock.lock()
                results[number] = result
                lock.broadcast()
                lock.unlock()
            }
        }
    }

    /// The next item, or nil after the last one; throws the error of an item that could not
    /// be made (and again on every later call).
    public func next() throws -> Item? {
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw failure }
        guard position < count else { return nil }
        while results[position] == nil { lock.wait() }
        guard let result = results.removeValue(forKey: position) else { return nil }
        position += 1
        scheduleLocked()
        switch result {
        case .success(let item): return item
        case .failure(let error):
            failure = error
            throw error
        }
    }
}

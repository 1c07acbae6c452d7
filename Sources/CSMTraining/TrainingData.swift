import CSMFormats
import CSMLoader
import CSMModels
import CSMNumerics
import CSMShards
import Foundation

/// One optimiser step's inputs: the real images, then the mixed ones, as one normalised
/// NHWC batch, with the real samples' classes and the mixed samples' soft targets.
public struct TrainingBatch: Sendable {
    public var images: FeatureMap
    public var realLabels: [Int]
    /// mixedCount · K soft targets.
    public var mixedTargets: [Float]
    public var realCount: Int { realLabels.count }
    public var mixedCount: Int { images.count - realLabels.count }
}

/// How the training data is drawn.
public struct TrainingDataOptions: Codable, Equatable, Sendable {
    public var batchSize: Int
    /// Share of the real samples held out for validation, drawn by `seed`.
    public var validationFraction: Double
    public var seed: UInt64
    /// Random crop (zero padding 4) and horizontal flip of the training images.
    public var augment: Bool
    /// Interior trajectory members per real sample, besides the endpoint.
    public var mixedAugmentations: Int
    /// Re-derive mixed labels from λ̂ with this sharpness (nil: the stored labels).
    public var sharpness: Double?
    /// Train real samples of classes no trajectory contains without mixed partners.
    public var skipUnpaired: Bool
    /// Build trajectories from the mixed samples whose `consistent` flag is 1 only (see
    /// `PairedLoader` for what happens when an endpoint is dropped).
    public var consistentOnly: Bool
    /// Probability in (0, 1] that a real sample brings its mixed group.
    public var mixedShare: Double

    public init(batchSize: Int = 128, validationFraction: Double = 0.1, seed: UInt64 = 0, augment: Bool = true,
                mixedAugmentations: Int = 1, sharpness: Double? = nil, skipUnpaired: Bool = false, consistentOnly: Bool = false,
                mixedShare: Double = 1) {
        self.batchSize = batchSize
        self.validationFraction = validationFraction
        self.seed = seed
        self.augment = augment
        self.mixedAugmentations = mixedAugmentations
        self.sharpness = sharpness
        self.skipUnpaired = skipUnpaired
        self.consistentOnly = consistentOnly
        self.mixedShare = mixedShare
    }
}

/// Real shards split into training and validation samples, and optionally a mixed set drawn
/// as the CSM recipe does (for each real sample, the endpoint of a trajectory of its class
/// most like that class plus interior members). Every batch of every epoch is a pure
/// function of the seed and the epoch.
public final class TrainingData {
    public let real: ShardSet
    public let mixed: ShardSet?
    public let trainIndices: [Int]
    /// The validation samples: indices into `validationSet`.
    public let validationIndices: [Int]
    /// `real`, or the shards given as `validationPath`.
    public let validationSet: ShardSet
    public let options: TrainingDataOptions
    /// The image size and normalisation the network sees.
    public let input: ResNetInput
    /// Classes without a trajectory, trained on real samples only (with `skipUnpaired`).
    public let unpairedClasses: [Int]
    private let loader: BatchLoader
    private let paired: PairedLoader?
    private let validationLoader: BatchLoader?

    /// Opens the data. `validationPath` names real shards to validate on (every real sample)
    /// instead of the share `options.validationFraction` held out of `realPath`, which must
    /// then be 0. `normalization` gives the input mean/std per channel (e.g. an
    /// initial classifier's); nil computes them from the training split's pixels (scaled
    /// to [0, 1]; population standard deviation).
    public init(realPath: String, mixedPath: String?, validationPath: String? = nil, options: TrainingDataOptions, normalization: (mean: [Float], std: [Float])? = nil,
                threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)) throws {
        guard options.batchSize > 0 else { throw TrainingError("the batch size must be positive") }
        guard (0..<1).contains(options.validationFraction) else {
            throw TrainingError("the validation fraction \(options.validationFraction) must lie in [0, 1)")
        }
        real = try ShardSet(path: realPath)
        let realIndices = real.indices(kind: .real)
        guard !realIndices.isEmpty else { throw FileError(realPath, "no real samples (these shards hold mixed data)") }
        var random = LoaderRandom(options.seed, 0x5641_4C49_4441_5445)
        let order = random.permutation(realIndices.count).map { realIndices[$0] }
        let held = Int((options.validationFraction * Double(realIndices.count)).rounded())
        trainIndices = order.dropFirst(held).sorted()
        if let validationPath {
            guard options.validationFraction == 0 else {
                throw TrainingError("validation shards replace the held-out share: the validation fraction must be 0")
            }
            validationSet = try ShardSet(path: validationPath)
            guard validationSet.height == real.height, validationSet.width == real.width, validationSet.channels == real.channels else {
                throw FileError(validationPath, "images are \(validationSet.height)×\(validationSet.width)×\(validationSet.channels), the training ones \(real.height)×\(real.width)×\(real.channels)")
            }
            guard validationSet.classNames == real.classNames else {
                throw FileError(validationPath, "classes \(validationSet.classNames) differ from the training shards' \(real.classNames)")
            }
            validationIndices = validationSet.indices(kind: .real)
            guard !validationIndices.isEmpty else { throw FileError(validationPath, "no real samples to validate on") }
        } else {
            validationSet = real
            validationIndices = order.prefix(held).sorted()
            if options.validationFraction > 0 && validationIndices.isEmpty {
                throw FileError(realPath, "the validation split is empty (\(realIndices.count) real samples × \(options.validationFraction)); use more data or --val-fraction 0")
            }
        }
        guard !trainIndices.isEmpty else {
            throw FileError(realPath, "the training split is empty (\(realIndices.count) real samples, validation fraction \(options.validationFraction))")
        }
        self.options = options
        let (mean, std) = try normalization ?? Self.statistics(real, trainIndices)
        input = ResNetInput(height: real.height, width: real.width, channels: real.channels, scale: 1 / 255, mean: mean, std: std)
        let transform = ImageTransform(scale: 1 / 255, mean: mean, std: std, cropPadding: options.augment ? 4 : 0,
                                       horizontalFlip: options.augment)
        let loaderOptions = LoaderOptions(batchSize: options.batchSize, shuffle: true, seed: options.seed, dropLast: false,
                                          sharpness: options.sharpness, transform: transform, prefetch: 4, threads: threads)
        loader = BatchLoader(real, indices: trainIndices, options: loaderOptions)
        if let mixedPath {
            let mixed = try ShardSet(path: mixedPath)
            guard mixed.height == real.height, mixed.width == real.width, mixed.channels == real.channels else {
                throw FileError(mixedPath, "images are \(mixed.height)×\(mixed.width)×\(mixed.channels), the real ones \(real.height)×\(real.width)×\(real.channels)")
            }
            guard mixed.classNames == real.classNames else {
                throw FileError(mixedPath, "classes \(mixed.classNames) differ from the real shards' \(real.classNames)")
            }
            let mixedIndices = mixed.indices(consistentOnly: options.consistentOnly, kind: .mixed)
            guard !mixedIndices.isEmpty else {
                throw FileError(mixedPath, options.consistentOnly ? "no consistent mixed samples (consistent = 1)" : "no mixed samples")
            }
            do {
                let paired = try PairedLoader(real: real, mixed: mixed, augmentations: options.mixedAugmentations,
                                              options: loaderOptions, realIndices: trainIndices, skipUnpaired: options.skipUnpaired,
                                              mixedIndices: mixedIndices, mixedShare: options.mixedShare)
                self.paired = paired
                unpairedClasses = paired.unpairedClasses
            } catch let error as LoaderError {
                throw FileError(mixedPath, "\(error.description)\(options.skipUnpaired ? "" : "; --skip-unpaired trains them on real samples only")")
            }
            self.mixed = mixed
        } else {
            mixed = nil
            paired = nil
            unpairedClasses = []
        }
        validationLoader = validationIndices.isEmpty ? nil : BatchLoader(validationSet, indices: validationIndices, options: LoaderOptions(
            batchSize: options.batchSize, shuffle: false, seed: options.seed, transform: ImageTransform(scale: 1 / 255, mean: mean, std: std),
            prefetch: 2, threads: threads))
    }

    public var classNames: [String] { real.classNames }
    public var classCount: Int { real.numClasses }
    /// Optimiser steps per epoch.
    public var stepsPerEpoch: Int { loader.batchCount }

    /// The batches of `epoch`, prepared ahead on background threads.
    public func batches(epoch: Int) -> TrainingBatches {
        if let paired { return TrainingBatches(paired: paired.epoch(epoch), realSet: real) }
        return TrainingBatches(real: loader.epoch(epoch), realSet: real)
    }

    /// The validation images (normalised, no augmentation) in batches, with their classes.
    public func validationBatches() -> TrainingBatches? {
        validationLoader.map { TrainingBatches(real: $0.epoch(0), realSet: validationSet) }
    }

    /// Per-channel mean and population standard deviation of the pixels (scaled to [0, 1])
    /// of `indices`.
    static func statistics(_ set: ShardSet, _ indices: [Int]) throws -> (mean: [Float], std: [Float]) {
        let c = set.channels
        var sum = [Double](repeating: 0, count: c), squares = [Double](repeating: 0, count: c)
        for i in indices {
            let pixels = try set.image(i)
            var partial = [Int](repeating: 0, count: c), partialSquares = [Int](repeating: 0, count: c)
            var channel = 0
            for p in pixels {
                partial[channel] += Int(p)
                partialSquares[channel] += Int(p) * Int(p)
                channel = channel + 1 == c ? 0 : channel + 1
            }
            for ch in 0..<c {
                sum[ch] += Double(partial[ch])
                squares[ch] += Double(partialSquares[ch])
            }
        }
        let count = Double(indices.count * set.height * set.width)
        var mean = [Float](), std = [Float]()
        for ch in 0..<c {
            let m = sum[ch] / count
            let variance = max(0, squares[ch] / count - m * m)
            mean.append(Float(m / 255))
            std.append(Float(max(variance.squareRoot(), 1e-3) / 255))
        }
        return (mean, std)
    }
}

/// The batches of one epoch (or of the validation set) as `TrainingBatch`es.
public struct TrainingBatches {
    private enum Source {
        case real(Prefetcher<Batch>)
        case paired(Prefetcher<PairedBatch>)
    }

    private let source: Source
    private let realSet: ShardSet

    init(real: Prefetcher<Batch>, realSet: ShardSet) {
        source = .real(real)
        self.realSet = realSet
    }

    init(paired: Prefetcher<PairedBatch>, realSet: ShardSet) {
        source = .paired(paired)
        self.realSet = realSet
    }

    /// The next batch, nil at the end; rethrows the loader's errors (e.g. a damaged shard).
    public func next() throws -> TrainingBatch? {
        switch source {
        case .real(let prefetcher):
            guard let batch = try prefetcher.next() else { return nil }
            return TrainingBatch(images: Self.nhwc(batch), realLabels: labels(batch), mixedTargets: [])
        case .paired(let prefetcher):
            guard let batch = try prefetcher.next() else { return nil }
            var images = Self.nhwc(batch.real)
            if batch.mixed.count > 0 { images = FeatureMap.joined([images, Self.nhwc(batch.mixed)]) }
            return TrainingBatch(images: images, realLabels: batch.realLabels, mixedTargets: batch.mixed.targets)
        }
    }

    private func labels(_ batch: Batch) -> [Int] {
        batch.indices.map { Int(realSet.columns.classA[$0]) }
    }

    private static func nhwc(_ batch: Batch) -> FeatureMap {
        FeatureMap(nchw: batch.images, count: batch.count, channels: batch.channels, height: batch.height, width: batch.width)
    }
}

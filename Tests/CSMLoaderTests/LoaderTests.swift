import CSMFormats
import CSMLoader
import CSMShards
import Foundation
import XCTest

/// Small shard sets written in the test: `groups` trajectories of 4 samples over pairs
/// (0,1), (1,2), (2,0), and a real set with classes 0, 1, 2.
final class LoaderTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "csm-loader-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    let names = ["zero", "one", "two"]

    /// Every item of an epoch, in order; throws where the epoch does.
    func all<Item>(_ items: Prefetcher<Item>) throws -> [Item] {
        var out: [Item] = []
        while let item = try items.next() { out.append(item) }
        return out
    }

    /// `image(g, i)`: the 4×5 pixels of member i of trajectory g (default: all different);
    /// `consistent(g, i)` its flag (default: 0 for member 2, 1 otherwise).
    func writeMixed(groups: Int, shards: Int, image: ((Int, Int) -> [UInt8])? = nil,
                    consistent: (Int, Int) -> UInt8 = { _, i in i == 2 ? 0 : 1 }) throws -> String {
        let dir = directory + "/mixed"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var manifest = Manifest(config: .object(["test": .bool(true)]))
        let pairs = [(0, 1), (1, 2), (2, 0)]
        let perShard = groups / shards
        for s in 0..<shards {
            var samples = ShardSamples(height: 4, width: 5, channels: 1, numClasses: 3, images: [], labels: [], classA: [], classB: [],
                                       lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
            for g in (s * perShard)..<((s + 1) * perShard) {
                let (a, b) = pairs[g % 3]
                for i in 0..<4 {
                    let lambda = Float(i) / 3
                    samples.images += image?(g, i) ?? (0..<20).map { UInt8(truncatingIfNeeded: g * 31 + i * 7 + $0) }
                    var label = [Float](repeating: 0, count: 3)
                    label[a] = lambda
                    label[b] = 1 - lambda
                    samples.labels += label
                    samples.classA.append(Int32(a))
                    samples.classB.append(Int32(b))
                    samples.lambdaGen.append(lambda)
                    samples.lambdaProj.append(lambda * 1.2 - 0.1)
                    samples.probA.append(lambda)
                    samples.probB.append(1 - lambda)
                    samples.consistent.append(consistent(g, i))
                    samples.group.append(Int64(g))
                    samples.seed.append(Int64(1000 + g))
                }
            }
            let name = String(format: "mixed-%05d.h5", s)
            try ShardWriter().write(samples, metadata: ShardMetadata(kind: .mixed, classNames: names, sharpness: 10, shardIndex: s,
                                                                     numShards: shards, createdBy: "test"), to: dir + "/" + name)
            manifest.record(.init(file: name, count: samples.count, sha256: try FileHash.sha256(ofFile: dir + "/" + name), shardIndex: s))
        }
        try manifest.write(to: dir + "/manifest.json")
        return dir
    }

    func writeReal(count: Int) throws -> String {
        let path = directory + "/real.h5"
        let samples = ShardSamples.real(height: 4, width: 5, channels: 1, numClasses: 3,
                                        images: (0..<count).flatMap { i in (0..<20).map { UInt8(truncatingIfNeeded: 200 + i + $0) } },
                                        classes: (0..<count).map { Int32($0 % 3) })
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .real, classNames: names, sharpness: 0, createdBy: "test"), to: path)
        return path
    }

    func testOpensManifestDirectoryAndFile() throws {
        let dir = try writeMixed(groups: 6, shards: 2)
        let set = try ShardSet(path: dir)
        XCTAssertEqual(set.count, 24)
        XCTAssertEqual(try ShardSet(path: dir + "/manifest.json").count, 24)
        XCTAssertEqual(try ShardSet(path: dir + "/mixed-00001.h5").count, 12)
        XCTAssertEqual(Array(try set.image(13)), (0..<20).map { UInt8(truncatingIfNeeded: 3 * 31 + 1 * 7 + $0) })
        XCTAssertEqual(set.columns.group[13], 3)
        XCTAssertEqual(set.indices(consistentOnly: true).count, 18)
        XCTAssertEqual(set.indices(pairs: [(1, 0)]).count, 8)
        // Soft labels re-derived from λ̂ for another sharpness.
        let label = set.label(5, sharpness: 4)
        let expected = Float(1 / (1 + exp(-4 * (Double(set.columns.lambdaProj[5]) - 0.5))))
        XCTAssertEqual(label[Int(set.columns.classA[5])], expected, accuracy: 1e-6)
        XCTAssertEqual(label.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(set.label(5), Array(set.columns.labels[15..<18]))
    }

    func testIncompleteRunIsRefusedNamingTheMissingShards() throws {
        let dir = try writeMixed(groups: 6, shards: 2)
        var manifest = try Manifest.read(from: dir + "/manifest.json")
        manifest.config = .object(["num_shards": .int(4)])
        try manifest.write(to: dir + "/manifest.json")
        XCTAssertThrowsError(try ShardSet(path: dir)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix(dir + "/manifest.json: incomplete dataset: lacks shards 2, 3 of 4"), message)
            XCTAssertTrue(message.contains("allowIncomplete"), message)
        }
        let partial = try ShardSet(path: dir, allowIncomplete: true)
        XCTAssertEqual(partial.count, 24)
        XCTAssertEqual(partial.coverage.gaps.map(\.missing), [[2, 3]])
        XCTAssertEqual(try ShardSet(path: dir + "/mixed-00001.h5").count, 12)     // one file: what was asked for

        manifest.config = .object(["num_shards": .int(2)])
        try manifest.write(to: dir + "/manifest.json")
        XCTAssertTrue(try ShardSet(path: dir).coverage.isComplete)
    }

    func testEpochsCoverEverySampleOnceAndAreDeterministic() throws {
        let set = try ShardSet(path: try writeMixed(groups: 9, shards: 3))
        var options = LoaderOptions(batchSize: 5, seed: 7, transform: .training(mean: [0.5], std: [0.25], cropPadding: 1))
        options.threads = 1
        let one = BatchLoader(set, options: options)
        options.threads = 4
        options.prefetch = 3
        let many = BatchLoader(set, options: options)
        var seen: [Int] = []
        let a = try all(one.epoch(2)), b = try all(many.epoch(2))
        XCTAssertEqual(a.count, 8)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.indices, y.indices)
            XCTAssertEqual(x.images, y.images)
            XCTAssertEqual(x.targets, y.targets)
            seen += x.indices
        }
        XCTAssertEqual(seen.sorted(), Array(0..<36))
        XCTAssertNotEqual(try all(one.epoch(3)).first?.indices, a.first?.indices)
        options.dropLast = true
        XCTAssertEqual(BatchLoader(set, options: options).batchCount, 7)
    }

    func testTransformsCropFlipNormalise() {
        let pixels: [UInt8] = (0..<12).map { UInt8($0 * 10) }        // 3×4, one channel
        var out = [Float](repeating: 0, count: 12)
        var random = LoaderRandom(1)
        ImageTransform(mean: [0.5], std: [0.5]).apply(pixels[...], height: 3, width: 4, channels: 1, random: &random, into: &out)
        XCTAssertEqual(out[5], (50 / 255 - 0.5) / 0.5, accuracy: 1e-6)
        // Flip only: every draw either flips or not; check one of each.
        var flipped = false, plain = false
        for seed in 0..<20 {
            var r = LoaderRandom(UInt64(seed))
            ImageTransform(scale: 1, horizontalFlip: true).apply(pixels[...], height: 3, width: 4, channels: 1, random: &r, into: &out)
            if out[0] == 30 && out[3] == 0 { flipped = true }
            if out[0] == 0 && out[3] == 30 { plain = true }
        }
        XCTAssertTrue(flipped && plain)
        // Crop with padding shifts the image and fills with the normalised zero.
        var shifted = false
        for seed in 0..<20 {
            var r = LoaderRandom(UInt64(seed))
            ImageTransform(scale: 1, cropPadding: 1).apply(pixels[...], height: 3, width: 4, channels: 1, random: &r, into: &out)
            if out[0] == 0 && out[1] == 0 && out[5] == 0 { shifted = true }   // moved down-right by one
        }
        XCTAssertTrue(shifted)
    }

    func testPairedBatchesFollowTheRecipe() throws {
        let mixed = try ShardSet(path: try writeMixed(groups: 9, shards: 3))
        let real = try ShardSet(path: try writeReal(count: 10))
        let loader = try PairedLoader(real: real, mixed: mixed, augmentations: 2, options: LoaderOptions(batchSize: 4, seed: 3))
        var total = 0
        for batch in try all(loader.epoch(0)) {
            XCTAssertEqual(batch.mixed.count, batch.real.count * 3)
            for (j, c) in batch.realLabels.enumerated() {
                let group = Array(batch.mixed.indices[(j * 3)..<((j + 1) * 3)])
                for i in group {
                    XCTAssertTrue(mixed.columns.classA[i] == c || mixed.columns.classB[i] == c, "group contains the real class")
                    XCTAssertEqual(mixed.columns.group[i], mixed.columns.group[group[0]], "one trajectory")
                }
                let endpoint = group[0]
                XCTAssertEqual(mixed.columns.lambdaGen[endpoint], Int(mixed.columns.classA[endpoint]) == c ? 1 : 0, "endpoint of class \(c)")
                for i in group.dropFirst() { XCTAssertTrue(mixed.columns.lambdaGen[i] > 0 && mixed.columns.lambdaGen[i] < 1) }
            }
            total += batch.real.count
        }
        XCTAssertEqual(total, 10)
    }

    func testCorruptAndTruncatedShardsAreErrorsNamingTheFile() throws {
        let dir = try writeMixed(groups: 6, shards: 2)
        let path = dir + "/mixed-00001.h5"
        // Flip a byte inside the images' stored chunks.
        let range = try ShardReader(path: path).storageRanges(of: .images).first!
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[range.lowerBound + range.count / 2] ^= 0x55
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let set = try ShardSet(path: dir)
        XCTAssertNoThrow(try set.image(0))
        XCTAssertThrowsError(try set.image(20)) { error in
            XCTAssertTrue("\(error)".contains("mixed-00001.h5") && "\(error)".contains("images"), "\(error)")
        }
        let loader = BatchLoader(set, options: LoaderOptions(batchSize: 24, shuffle: false))
        XCTAssertThrowsError(try loader.epoch(0).next())
        // Truncated.
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes.prefix(bytes.count / 2)))
        XCTAssertThrowsError(try ShardSet(path: dir)) { error in XCTAssertTrue("\(error)".contains("mixed-00001.h5"), "\(error)") }
    }

    /// Threads reading images of the same and of different shards fill the cache once each
    /// and all see the stored pixels (run under `swift test --sanitize=thread` too).
    func testImageCacheIsFilledSafelyFromManyThreads() throws {
        let set = try ShardSet(path: try writeMixed(groups: 9, shards: 3))
        let expected = (0..<set.count).map { i in (0..<20).map { UInt8(truncatingIfNeeded: i / 4 * 31 + i % 4 * 7 + $0) } }
        let lock = NSLock()
        var seen = [[UInt8]](repeating: [], count: set.count)
        DispatchQueue.concurrentPerform(iterations: 4 * set.count) { n in
            let i = (n * 7) % set.count
            let pixels = (try? set.image(i)).map(Array.init) ?? []
            lock.withLock { seen[i] = pixels }
        }
        XCTAssertEqual(seen, expected)
    }

    /// Flips a byte in the middle of the first stored chunk of `path`'s images, so that
    /// Fletcher-32 fails when they are read.
    func damageImages(_ path: String) throws {
        let range = try XCTUnwrap(try ShardReader(path: path).storageRanges(of: .images).first)
        var bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
        bytes[range.lowerBound + range.count / 2] ^= 0x55
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }

    func testDamagedShardMetDuringAnEpochThrows() throws {
        let dir = try writeMixed(groups: 6, shards: 3)                 // 8 samples per shard
        try damageImages(dir + "/mixed-00002.h5")
        let set = try ShardSet(path: dir)
        var options = LoaderOptions(batchSize: 4, shuffle: false, prefetch: 3, threads: 2)
        let loader = BatchLoader(set, options: options)
        XCTAssertEqual(loader.batchCount, 6)
        let batches = loader.epoch(0)
        var delivered = 0
        XCTAssertThrowsError(try { while try batches.next() != nil { delivered += 1 } }()) { error in
            XCTAssertTrue("\(error)".contains("mixed-00002.h5") && "\(error)".contains("images"), "\(error)")
        }
        XCTAssertEqual(delivered, 4, "the batches before the damaged shard's arrive in order")
        XCTAssertThrowsError(try batches.next(), "the error stays: the epoch cannot look finished")

        // Shuffled, so the damaged shard's samples are met in the first batches.
        options.shuffle = true
        XCTAssertThrowsError(try all(BatchLoader(set, options: options).epoch(1)))

        // Paired batches whose mixed groups come from the damaged shard.
        let paired = try PairedLoader(real: try ShardSet(path: try writeReal(count: 10)), mixed: set, augmentations: 2,
                                      options: LoaderOptions(batchSize: 2, seed: 1, threads: 2))
        XCTAssertThrowsError(try all(paired.epoch(0))) { error in XCTAssertTrue("\(error)".contains("mixed-00002.h5"), "\(error)") }
    }

    /// Every mixed sample of an epoch gets its own crop and flip (drawn from the seed, the
    /// epoch and its position in the epoch), not one per position of the mixed sub-batch.
    func testPairedBatchesDrawIndependentAugmentationsForEveryMixedSample() throws {
        let pattern = (0..<20).map { UInt8($0 * 12) }                 // every crop and flip looks different
        let mixed = try ShardSet(path: try writeMixed(groups: 9, shards: 3, image: { _, _ in pattern }))
        let real = try ShardSet(path: try writeReal(count: 12))
        var options = LoaderOptions(batchSize: 3, seed: 5, transform: .training(mean: [0.5], std: [0.5], cropPadding: 1))
        options.threads = 1
        let loader = try PairedLoader(real: real, mixed: mixed, augmentations: 2, options: options)
        let batches = try all(loader.epoch(1))
        XCTAssertEqual(batches.count, 4)
        let per = 20
        func image(_ batch: PairedBatch, _ m: Int) -> [Float] { Array(batch.mixed.images[(m * per)..<((m + 1) * per)]) }
        // The same stored image everywhere: what differs is the augmentation alone.
        var variants = Set<[Float]>()
        for m in 0..<9 {
            let atPosition = batches.map { image($0, m) }
            XCTAssertGreaterThan(Set(atPosition).count, 1, "mixed position \(m) has the same crop and flip in every batch")
            variants.formUnion(atPosition)
        }
        XCTAssertGreaterThanOrEqual(variants.count, 10, "36 mixed samples, 18 possible crops and flips")

        // Still a pure function of (seed, epoch, position): any thread count, any order.
        options.threads = 4
        options.prefetch = 4
        let parallel = try all(try PairedLoader(real: real, mixed: mixed, augmentations: 2, options: options).epoch(1))
        for (a, b) in zip(batches, parallel) {
            XCTAssertEqual(a.real.indices, b.real.indices)
            XCTAssertEqual(a.real.images, b.real.images)
            XCTAssertEqual(a.mixed.indices, b.mixed.indices)
            XCTAssertEqual(a.mixed.images, b.mixed.images)
            XCTAssertEqual(a.mixed.targets, b.mixed.targets)
        }
        let third = try loader.batch(2, epoch: 1)
        XCTAssertEqual(third.mixed.images, batches[2].mixed.images)
        XCTAssertNotEqual(try loader.batch(2, epoch: 2).mixed.images, third.mixed.images)
    }

    /// Consistent samples only: the extreme remaining member stands in for a dropped
    /// endpoint, and a trajectory with one member left is not used.
    func testConsistentOnlyTrajectories() throws {
        // Pair (0, 1), g % 3 == 0: the class-0 endpoint (λ = 1) is inconsistent. Pair (1, 2):
        // only the λ = 1 member is consistent. Pair (2, 0): member 2 is inconsistent.
        let mixed = try ShardSet(path: try writeMixed(groups: 9, shards: 3, consistent: { g, i in
            switch g % 3 {
            case 0: return i == 3 ? 0 : 1
            case 1: return i == 3 ? 1 : 0
            default: return i == 2 ? 0 : 1
            }
        }))
        let real = try ShardSet(path: try writeReal(count: 30))
        let loader = try PairedLoader(real: real, mixed: mixed, augmentations: 2, options: LoaderOptions(batchSize: 8, seed: 1, threads: 1),
                                      mixedIndices: mixed.indices(consistentOnly: true, kind: .mixed))
        let c = mixed.columns
        var endpoints: [Int: Set<Float>] = [:]
        for epoch in 0..<3 {
            for batch in try all(loader.epoch(epoch)) {
                for (j, label) in batch.realLabels.enumerated() {
                    let group = Array(batch.mixed.indices[(j * 3)..<((j + 1) * 3)])
                    for i in group {
                        XCTAssertEqual(c.consistent[i], 1)
                        XCTAssertNotEqual(c.group[i] % 3, 1, "the pair (1, 2) trajectories keep one member and are not used")
                    }
                    endpoints[label, default: []].insert(c.lambdaGen[group[0]])
                }
            }
        }
        // Class 0 is a (λ = 1) of pair (0, 1), whose λ = 1 member is gone: λ = 2/3 stands in;
        // and b (λ = 0) of pair (2, 0).
        XCTAssertEqual(endpoints[0], [Float(2) / 3, 0])
        XCTAssertEqual(endpoints[1], [0])   // b of pair (0, 1)
        XCTAssertEqual(endpoints[2], [1])   // a of pair (2, 0)
    }

    /// --mixed-share P: about P of the real samples bring their group; batches stay a pure
    /// function of (seed, epoch) on any number of threads, and P = 1 changes nothing.
    func testMixedShareIsSeededAndThreadIndependent() throws {
        let mixed = try ShardSet(path: try writeMixed(groups: 9, shards: 3))
        let real = try ShardSet(path: try writeReal(count: 400))
        var options = LoaderOptions(batchSize: 16, seed: 2, transform: .training(mean: [0.5], std: [0.5], cropPadding: 1), threads: 1)
        let half = try PairedLoader(real: real, mixed: mixed, augmentations: 1, options: options, mixedShare: 0.5)
        let batches = try all(half.epoch(0))
        let withGroup = batches.reduce(0) { $0 + $1.mixed.count / 2 }
        XCTAssertEqual(Double(withGroup), 200, accuracy: 40)
        XCTAssertTrue(batches.contains { $0.mixed.count != batches[0].mixed.count }, "the share varies from batch to batch")
        XCTAssertNotEqual(try all(half.epoch(1)).map(\.mixed.indices), batches.map(\.mixed.indices))

        options.threads = 4
        options.prefetch = 4
        let parallel = try all(try PairedLoader(real: real, mixed: mixed, augmentations: 1, options: options, mixedShare: 0.5).epoch(0))
        XCTAssertEqual(parallel.count, batches.count)
        for (a, b) in zip(batches, parallel) {
            XCTAssertEqual(a.real.images, b.real.images)
            XCTAssertEqual(a.mixed.indices, b.mixed.indices)
            XCTAssertEqual(a.mixed.images, b.mixed.images)
            XCTAssertEqual(a.mixed.targets, b.mixed.targets)
        }
        let full = try all(try PairedLoader(real: real, mixed: mixed, augmentations: 1, options: options, mixedShare: 1).epoch(0))
        let plain = try all(try PairedLoader(real: real, mixed: mixed, augmentations: 1, options: options).epoch(0))
        XCTAssertEqual(full.map(\.mixed.images), plain.map(\.mixed.images))
        XCTAssertEqual(full.map(\.mixed.count), full.map { $0.real.count * 2 })
        // The positions of epoch 1 that keep their group at seed 2, P = 0.5, as examples/pytorch/train.py
        // draws them (LoaderRandom(seed, epoch, position, 0x5348415245), top 53 bits < P).
        let kept = (0..<24).filter { !half.group(forReal: real.indices(kind: .real)[0], position: $0, epoch: 1).isEmpty }
        XCTAssertEqual(kept, [0, 4, 5, 10, 11, 16, 17, 18, 20, 21, 22, 23])
        XCTAssertThrowsError(try PairedLoader(real: real, mixed: mixed, options: options, mixedShare: 0))
        XCTAssertThrowsError(try PairedLoader(real: real, mixed: mixed, options: options, mixedShare: 1.5))
    }
}

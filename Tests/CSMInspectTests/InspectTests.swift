import CSMFormats
import CSMInspect
import CSMShards
import Foundation
import XCTest

/// A small mixed run written by hand: classes A–D, pairs (A, B) and (C, D), two groups per
/// pair, λ_gen ∈ {0, 0.5, 1}, one shard per pair, and a manifest.
///
/// λ̂ = λ_gen + offset of the group (+0.1, −0.1, +0.3, −0.2); a sample is consistent when
/// λ̂ ∈ [−0.15, 1.15]; the label puts λ_gen on a and 1 − λ_gen on b.
enum InspectFixture {
    static let classNames = ["A", "B", "C", "D"]
    static let levels: [Float] = [0, 0.5, 1]
    static let offsets: [Float] = [0.1, -0.1, 0.3, -0.2]
    static let height = 6, width = 5

    static func pair(ofGroup group: Int) -> (Int32, Int32) { group < 2 ? (0, 1) : (2, 3) }

    /// The image of sample (group, level): a distinct pattern.
    static func image(group: Int, level: Int) -> [UInt8] {
        (0..<(height * width)).map { UInt8((group * 50 + level * 15 + $0 * 3) % 256) }
    }

    static func samples(groups: Range<Int>) -> ShardSamples {
        var s = ShardSamples(height: height, width: width, channels: 1, numClasses: 4, images: [], labels: [], classA: [], classB: [],
                             lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
        for group in groups {
            let (a, b) = pair(ofGroup: group)
            for (level, lambda) in levels.enumerated() {
                let projection = lambda + offsets[group]
                var label = [Float](repeating: 0, count: 4)
                label[Int(a)] = lambda
                label[Int(b)] += 1 - lambda
                s.images += image(group: group, level: level)
                s.labels += label
                s.classA.append(a)
                s.classB.append(b)
                s.lambdaGen.append(lambda)
                s.lambdaProj.append(projection)
                s.probA.append(lambda)
                s.probB.append(1 - lambda)
                s.consistent.append(projection >= -0.15 && projection <= 1.15 ? 1 : 0)
                s.group.append(Int64(group))
                s.seed.append(Int64(1000 + group))
            }
        }
        return s
    }

    static func metadata(shard: Int, kind: ShardKind = .mixed) -> ShardMetadata {
        ShardMetadata(kind: kind, classNames: classNames, sharpness: kind == .mixed ? 10 : .nan, shardIndex: shard, numShards: 2,
                      createdBy: "csm test")
    }

    /// Writes mixed-00000.h5 (groups 0, 1), mixed-00001.h5 (groups 2, 3) and manifest.json
    /// into `directory`; returns the shard paths.
    @discardableResult
    static func write(to directory: String) throws -> [String] {
        var manifest = Manifest(config: .object(["num_shards": .int(2)]))
        var paths: [String] = []
        for shard in 0..<2 {
            let name = String(format: "mixed-%05d.h5", shard)
            let path = directory + "/" + name
            let samples = samples(groups: (2 * shard)..<(2 * shard + 2))
            try ShardWriter(chunkBytes: 40).write(samples, metadata: metadata(shard: shard), to: path)
            manifest.record(.init(file: name, count: samples.count, sha256: try FileHash.sha256(ofFile: path), shardIndex: shard))
            paths.append(path)
        }
        try manifest.write(to: directory + "/manifest.json")
        return paths
    }

    /// Writes `real.h5` into `directory`, a real shard of 6 samples (the images of groups 0
    /// and 1) of classes A, A, B, D, D, D with one-hot labels; returns its path.
    static func writeReal(to directory: String) throws -> String {
        var samples = samples(groups: 0..<2)
        samples.classA = [0, 0, 1, 3, 3, 3]
        samples.classB = [Int32](repeating: -1, count: 6)
        samples.lambdaGen = [Float](repeating: 1, count: 6)
        samples.lambdaProj = [Float](repeating: .nan, count: 6)
        samples.group = [Int64](repeating: -1, count: 6)
        samples.labels = samples.classA.flatMap { a in (0..<4).map { Float($0 == Int(a) ? 1 : 0) } }
        let path = directory + "/real.h5"
        try ShardWriter().write(samples, metadata: metadata(shard: 0, kind: .real), to: path)
        return path
    }
}

final class InspectSummaryTests: XCTestCase {
    /// The text `csm inspect` prints: the header, the rows, the table of pairs with their groups.
    func testTheTextReport() throws {
        let directory = try temporaryDirectory(self)
        try InspectFixture.write(to: directory)
        let text = InspectText(summary: try DatasetSummary(collection: try ShardCollection(path: directory))).render()
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "\(directory): 12 samples in 2 shards (manifest)")
        XCTAssertTrue(lines.contains("  images          6×5×1 uint8"), text)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  classes         4: A, B, C, D") }, text)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  mixed           12 samples: 2 pairs, 4 groups, 3 λ levels") }, text)
        // One row per pair: 2 groups × 3 λ each.
        XCTAssertEqual(lines.filter { $0.hasPrefix("  A / B") || $0.hasPrefix("  C / D") }.count, 2, text)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  A / B") && $0.contains("     2        6") }, text)
        XCTAssertEqual(InspectText.bytes(1536), "1.50 KiB")
    }

    func testSummaryNumbers() throws {
        let directory = try temporaryDirectory(self)
        let paths = try InspectFixture.write(to: directory)
        let summary = try DatasetSummary(collection: try ShardCollection(path: directory))

        XCTAssertEqual(summary.source, .manifest)
        XCTAssertEqual(summary.shards, 2)
        XCTAssertEqual(summary.samples, 12)
        XCTAssertEqual(summary.mixedSamples, 12)
        XCTAssertEqual(summary.realSamples, 0)
        XCTAssertEqual(summary.classNames, InspectFixture.classNames)
        XCTAssertEqual(summary.imageShape, [6, 5, 1])
        XCTAssertEqual(summary.groups, 4)
        XCTAssertEqual(summary.sharpness, [10])
        XCTAssertEqual(summary.createdBy, ["csm test"])

        // Consistent: all but λ̂ = 1.3 (group 2) and λ̂ = −0.2 (group 3).
        XCTAssertEqual(summary.consistent, 10)
        XCTAssertEqual(try XCTUnwrap(summary.consistencyRate), 10.0 / 12, accuracy: 1e-12)

        // Pairs in the order they appear.
        XCTAssertEqual(summary.pairs.map { [$0.classA, $0.classB] }, [[0, 1], [2, 3]])
        XCTAssertEqual(summary.pairs.map(\.groups), [2, 2])
        XCTAssertEqual(summary.pairs.map(\.samples), [6, 6])
        XCTAssertEqual(summary.pairs.map(\.consistent), [6, 4])
        XCTAssertEqual(try XCTUnwrap(summary.pairs[1].lambdaProj.mean), (0.3 + 0.8 + 1.3 - 0.2 + 0.3 + 0.8) / 6, accuracy: 1e-6)
        XCTAssertEqual(summary.pairs[0].levels.map(\.lambdaGen), [0, 0.5, 1])

        // Levels: mean λ̂ = λ + mean offset (0.025); consistent 3, 4, 3.
        XCTAssertEqual(summary.levels.map(\.lambdaGen), [0, 0.5, 1])
        XCTAssertEqual(summary.levels.map(\.samples), [4, 4, 4])
        XCTAssertEqual(summary.levels.map(\.consistent), [3, 4, 3])
        for (level, expected) in zip(summary.levels, [0.025, 0.525, 1.025]) {
            XCTAssertEqual(try XCTUnwrap(level.lambdaProj.mean), expected, accuracy: 1e-6)
        }

        // λ̂ overall and its histogram; λ_gen's histogram.
        let projections: [Double] = [0.1, 0.6, 1.1, -0.1, 0.4, 0.9, 0.3, 0.8, 1.3, -0.2, 0.3, 0.8]
        let mean = projections.reduce(0, +) / 12
        let sd = (projections.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12).squareRoot()
        XCTAssertEqual(summary.lambdaProjStatistics.count, 12)
        XCTAssertEqual(try XCTUnwrap(summary.lambdaProjStatistics.mean), mean, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(summary.lambdaProjStatistics.standardDeviation), sd, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(summary.lambdaProjStatistics.min), -0.2, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(summary.lambdaProjStatistics.max), 1.3, accuracy: 1e-6)
        XCTAssertEqual(summary.lambdaProjMissing, 0)
        XCTAssertEqual(summary.lambdaProj.counts.reduce(0, +), 12)
        XCTAssertEqual(summary.lambdaProj.counts[Int((1.3 + 0.5) / 0.0625)], 1)
        XCTAssertEqual(summary.lambdaGen.counts[0], 4)
        XCTAssertEqual(summary.lambdaGen.counts[10], 4)
        XCTAssertEqual(summary.lambdaGen.counts[19], 4)

        // Labels (λ, 1 − λ): 0 bits at the ends, 1 bit in the middle.
        XCTAssertEqual(try XCTUnwrap(summary.labelEntropy.mean), 1.0 / 3, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(summary.labelEntropy.max), 1, accuracy: 1e-6)

        // Bytes: the files' sizes; uncompressed, per sample 30 + 4·4 + 2·4 + 4·4 + 1 + 2·8.
        let sizes = try paths.map { try XCTUnwrap(FileManager.default.attributesOfItem(atPath: $0)[.size] as? NSNumber).intValue }
        XCTAssertEqual(summary.bytesOnDisk, sizes.reduce(0, +))
        XCTAssertEqual(summary.rawBytes, 12 * (30 + 16 + 8 + 16 + 1 + 16))

        // JSON with snake_case keys; undefined numbers would be null.
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try encoder.encode(summary)) as? [String: Any])
        XCTAssertEqual(json["consistency_rate"] as? Double ?? 0, 10.0 / 12, accuracy: 1e-12)
        XCTAssertNotNil(json["lambda_proj_statistics"] as? [String: Any])
        XCTAssertEqual((json["pairs"] as? [[String: Any]])?.first?["class_b"] as? Int, 1)
    }

    func testSameSummaryThroughManifestDirectoryAndFiles() throws {
        let directory = try temporaryDirectory(self)
        let paths = try InspectFixture.write(to: directory)
        let viaDirectory = try DatasetSummary(collection: try ShardCollection(path: directory))
        let viaManifest = try DatasetSummary(collection: try ShardCollection(path: directory + "/manifest.json"))
        XCTAssertEqual(viaManifest.levels, viaDirectory.levels)
        XCTAssertEqual(viaManifest.pairs, viaDirectory.pairs)

        let single = try DatasetSummary(collection: try ShardCollection(path: paths[1]))
        XCTAssertEqual(single.source, .file)
        XCTAssertEqual(single.samples, 6)
        XCTAssertEqual(single.pairs.map { [$0.classA, $0.classB] }, [[2, 3]])

        try FileManager.default.removeItem(atPath: directory + "/manifest.json")
        let collection = try ShardCollection(path: directory)
        XCTAssertEqual(collection.source, .directory)
        XCTAssertEqual(collection.shardPaths, paths)
        XCTAssertEqual(try DatasetSummary(collection: collection).pairs, viaDirectory.pairs)
    }

    func testRealShard() throws {
        let collection = try ShardCollection(path: try InspectFixture.writeReal(to: try temporaryDirectory(self)))
        let summary = try DatasetSummary(collection: collection)
        XCTAssertEqual(summary.realSamples, 6)
        XCTAssertEqual(summary.mixedSamples, 0)
        XCTAssertEqual(summary.realClassCounts, [2, 1, 0, 3])
        XCTAssertNil(summary.consistencyRate)
        XCTAssertTrue(summary.pairs.isEmpty)
        XCTAssertTrue(summary.sharpness.isEmpty)
        XCTAssertTrue(collection.verify().isClean, "\(collection.verify().problems)")

        let examples = try collection.examples(perClass: 2, classLimit: 4)
        XCTAssertEqual(examples.map(\.classIndex), [0, 1, 3])
        XCTAssertEqual(examples.map(\.images.count), [2, 1, 2])
        XCTAssertEqual(examples[2].images[1], InspectFixture.image(group: 1, level: 1))
        XCTAssertTrue(try collection.trajectories(limit: 8).isEmpty)
    }

    func testTrajectoriesAndProjections() throws {
        let directory = try temporaryDirectory(self)
        try InspectFixture.write(to: directory)
        let collection = try ShardCollection(path: directory)

        let first = try collection.trajectories(limit: 3)
        XCTAssertEqual(first.map(\.group), [0, 1, 2])
        XCTAssertEqual(first.map(\.classA), [0, 0, 2])
        XCTAssertEqual(first[2].lambdaGen, InspectFixture.levels)
        XCTAssertEqual(first[2].lambdaProj.map { Double($0) }, [0.3, 0.8, 1.3].map { Double(Float($0)) })
        XCTAssertEqual(first[2].consistent, [true, true, false])
        XCTAssertEqual(first[1].images, (0..<3).map { InspectFixture.image(group: 1, level: $0) })
        XCTAssertEqual([first[0].height, first[0].width, first[0].channels], [6, 5, 1])

        // A pair filter matches either order.
        let second = try collection.trajectories(limit: 8, pairs: [(3, 2)])
        XCTAssertEqual(second.map(\.group), [2, 3])
        XCTAssertEqual(second[1].images[0], InspectFixture.image(group: 3, level: 0))

        let projections = try collection.projections()
        XCTAssertEqual(projections.map { [$0.classA, $0.classB] }, [[0, 1], [2, 3]])
        XCTAssertEqual(projections.map(\.lambdaGen.count), [6, 6])
        XCTAssertEqual(try collection.projections(pairs: [(1, 0)]).count, 1)
    }
}

final class InspectVerifyTests: XCTestCase {
    /// Problems of `report` about `path`.
    func problems(_ report: VerificationReport, _ path: String) -> [FileError] {
        report.problems.filter { $0.path == path }
    }

    func testCleanRun() throws {
        let directory = try temporaryDirectory(self)
        try InspectFixture.write(to: directory)
        let report = try ShardCollection(path: directory).verify()
        XCTAssertTrue(report.isClean, "\(report.problems)")
        XCTAssertEqual(report.shards, 2)
        XCTAssertEqual(report.samples, 12)
        XCTAssertEqual(report.notes, [])
    }

    func testIncompleteRunIsAProblemAndInTheSummary() throws {
        let directory = try temporaryDirectory(self)
        try InspectFixture.write(to: directory)
        var manifest = try Manifest.read(from: directory + "/manifest.json")
        manifest.shards.removeFirst()
        try manifest.write(to: directory + "/manifest.json")
        let collection = try ShardCollection(path: directory)
        let report = collection.verify()
        XCTAssertEqual(problems(report, directory + "/manifest.json").map(\.description),
                       [directory + "/manifest.json: 'shards': incomplete dataset: lacks shard 0 of 2"])
        let summary = try DatasetSummary(collection: collection)
        XCTAssertEqual(summary.expectedShards, 2)
        XCTAssertEqual(summary.missingShards, [0])
    }

    func testFlippedByteNamesFileAndDataset() throws {
        let directory = try temporaryDirectory(self)
        let paths = try InspectFixture.write(to: directory)
        for dataset in [ShardDataset.lambdaProj, .images, .seed] {
            let original = try XCTUnwrap(FileManager.default.contents(atPath: paths[1]))
            let chunk = try XCTUnwrap(try ShardReader(path: paths[1]).storageRanges(of: dataset).last)
            var bytes = [UInt8](original)
            bytes[(chunk.lowerBound + chunk.upperBound) / 2] ^= 0x04
            try Data(bytes).write(to: URL(fileURLWithPath: paths[1]))

            let report = try ShardCollection(path: directory).verify()
            XCTAssertFalse(report.isClean)
            XCTAssertTrue(problems(report, paths[0]).isEmpty, "\(report.problems)")
            let found = problems(report, paths[1])
            XCTAssertTrue(found.contains { $0.dataset == nil && $0.problem.contains("SHA-256") }, "\(found)")
            let damaged = try XCTUnwrap(found.first { $0.dataset == dataset.name }, "\(found)")
            XCTAssertTrue(damaged.problem.contains("Fletcher32"), damaged.description)
            XCTAssertEqual(damaged.description.split(separator: "\n").count, 1)
            try original.write(to: URL(fileURLWithPath: paths[1]))
        }
        XCTAssertTrue(try ShardCollection(path: directory).verify().isClean)
    }

    func testTruncatedShardNamesFileAndDataset() throws {
        let directory = try temporaryDirectory(self)
        let paths = try InspectFixture.write(to: directory)
        let original = try XCTUnwrap(FileManager.default.contents(atPath: paths[0]))
        let imageChunks = try ShardReader(path: paths[0]).storageRanges(of: .images)
        // Inside the image chunks, the lost datasets are known: images and everything after.
        let cut = try XCTUnwrap(imageChunks.last).lowerBound + 1
        try original.prefix(cut).write(to: URL(fileURLWithPath: paths[0]))
        let report = try ShardCollection(path: directory).verify()
        let found = problems(report, paths[0])
        XCTAssertTrue(found.contains { $0.dataset == "images" && $0.problem.contains("truncated") }, "\(found)")
        XCTAssertTrue(found.contains { $0.dataset == "seed" }, "\(found)")
        XCTAssertTrue(found.contains { $0.problem.contains("SHA-256") }, "\(found)")
        XCTAssertTrue(problems(report, paths[1]).isEmpty, "\(report.problems)")

        // Any length: problems for that file, one line each, never a crash.
        for length in [original.count - 1, original.count * 3 / 4, original.count / 2, original.count / 5, 100, 9, 0] {
            try original.prefix(length).write(to: URL(fileURLWithPath: paths[0]))
            let report = try ShardCollection(path: directory).verify()
            let found = problems(report, paths[0])
            XCTAssertFalse(found.isEmpty, "length \(length)")
            XCTAssertTrue(found.allSatisfy { !$0.description.contains("\n") })
            // Between the header and the last records, the datasets cut are named.
            if length > 100 && length < original.count * 4 / 5 {
                XCTAssertTrue(found.contains { $0.dataset != nil && $0.problem.contains("truncated") }, "length \(length): \(found)")
            }
        }
    }

    func testManifestMismatchesAndStrayFiles() throws {
        let directory = try temporaryDirectory(self)
        let paths = try InspectFixture.write(to: directory)
        var manifest = try Manifest.read(from: directory + "/manifest.json")
        manifest.shards[0].count = 7
        manifest.shards[1].shardIndex = 5
        manifest.record(.init(file: "mixed-00002.h5", count: 6, sha256: String(repeating: "0", count: 64), shardIndex: 2))
        try manifest.write(to: directory + "/manifest.json")
        try FileManager.default.copyItem(atPath: paths[0], toPath: directory + "/stray.h5")
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory + "/.mixed-00003.h5.tmp"))

        let collection = try ShardCollection(path: directory)
        XCTAssertEqual(collection.unlistedFiles, [directory + "/stray.h5"])
        XCTAssertEqual(collection.temporaryFiles, [directory + "/.mixed-00003.h5.tmp"])
        let report = collection.verify()
        let descriptions = report.problems.map(\.description)
        XCTAssertTrue(descriptions.contains("\(paths[0]): holds 6 samples, manifest.json says 7"), "\(descriptions)")
        XCTAssertTrue(descriptions.contains("\(paths[1]): 'shard_index': is 1, manifest.json says 5"), "\(descriptions)")
        XCTAssertTrue(descriptions.contains("\(directory)/mixed-00002.h5: missing (listed in manifest.json)"), "\(descriptions)")
        XCTAssertTrue(descriptions.contains { $0.hasPrefix("\(directory)/stray.h5: not listed") }, "\(descriptions)")
        // Shard index 1 of the run's 2 is listed under index 5: shard 1 is missing.
        XCTAssertTrue(descriptions.contains("\(directory)/manifest.json: 'shards': incomplete dataset: lacks shard 1 of 2"), "\(descriptions)")
        XCTAssertEqual(report.problems.count, 5, "\(descriptions)")
        XCTAssertTrue(report.notes.contains { $0.contains(".mixed-00003.h5.tmp") && $0.contains("leftover") }, "\(report.notes)")
    }

    func testValuesTheSchemaConstrains() throws {
        let directory = try temporaryDirectory(self)
        var samples = InspectFixture.samples(groups: 0..<2)
        samples.labels[4] = 0.25           // row 1 sums to 0.75
        samples.classB[5] = 9              // no class 9
        samples.lambdaGen[2] = 1.5
        samples.consistent[3] = 2
        let path = directory + "/bad.h5"
        try ShardWriter().write(samples, metadata: InspectFixture.metadata(shard: 0), to: path)
        let report = try ShardCollection(path: path).verify()
        XCTAssertEqual(Set(report.problems.compactMap(\.dataset)), ["labels", "class_b", "lambda_gen", "consistent"], "\(report.problems)")
        XCTAssertTrue(report.problems.allSatisfy { $0.path == path })
        XCTAssertTrue(report.problems.contains { $0.dataset == "class_b" && $0.problem.contains("row 5") }, "\(report.problems)")
        XCTAssertTrue(report.notes.contains { $0.contains("SHA-256") && $0.contains("not checked") }, "\(report.notes)")
    }

    /// A mixed image whose pixels are all one value (what NaN quantises to) fails; so does a
    /// label row that is not a probability vector within 1e-5; a constant real image is a
    /// warning only. The Python reader's tests refuse the same files.
    func testConstantMixedImagesAndLabelsThatAreNotProbabilities() throws {
        let directory = try temporaryDirectory(self)
        let size = InspectFixture.height * InspectFixture.width
        var samples = InspectFixture.samples(groups: 0..<2)
        for i in (2 * size)..<(3 * size) { samples.images[i] = 255 }     // row 2
        for i in (4 * size)..<(5 * size) { samples.images[i] = 255 }     // row 4
        samples.labels[3 * 4] += 2e-5                                     // row 3 sums to 1 + 2e-5
        samples.labels[5 * 4] += 5e-6                                     // row 5: within the tolerance
        let path = directory + "/bad.h5"
        try ShardWriter().write(samples, metadata: InspectFixture.metadata(shard: 0), to: path)
        let report = try ShardCollection(path: path).verify()
        let descriptions = report.problems.map(\.description)
        XCTAssertEqual(report.problems.count, 2, "\(descriptions)")
        XCTAssertTrue(descriptions.contains("\(path): 'images': 2 of 6 mixed images are constant (first: row 2, every pixel 255); "
                                            + "no generator makes those: the diffusion model or the sampler failed"), "\(descriptions)")
        XCTAssertTrue(descriptions.contains { $0.hasPrefix("\(path): 'labels': 1 of 6 rows are not non-negative numbers summing to 1 within 1e-05 (first: row 3") },
                      "\(descriptions)")
        XCTAssertThrowsError(try ShardReader(path: path).columns()) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path): 'labels': row 3 holds ["), "\(error)")
        }
        for (row, value) in [(1, Float(-0.25)), (1, Float.nan)] {
            var negative = InspectFixture.samples(groups: 0..<2)
            negative.labels[row * 4] = value
            negative.labels[row * 4 + 1] = 1 - (value.isNaN ? 0 : value)
            let file = directory + "/negative.h5"
            try ShardWriter().write(negative, metadata: InspectFixture.metadata(shard: 0), to: file)
            XCTAssertEqual(try ShardCollection(path: file).verify().problems.map(\.dataset), ["labels"])
            XCTAssertThrowsError(try ShardReader(path: file).columns()) { XCTAssertTrue("\($0)".contains("row \(row)"), "\($0)") }
        }

        var real = ShardSamples.real(height: 4, width: 4, channels: 1, numClasses: 4, images: (0..<64).map { UInt8($0) },
                                     classes: [0, 1, 2, 3])
        for i in 16..<32 { real.images[i] = 0 }                          // row 1: a blank image
        let realPath = directory + "/real.h5"
        try ShardWriter().write(real, metadata: InspectFixture.metadata(shard: 0, kind: .real), to: realPath)
        let realReport = try ShardCollection(path: realPath).verify()
        XCTAssertTrue(realReport.isClean, "\(realReport.problems)")
        XCTAssertEqual(realReport.warnings, ["\(realPath): 1 of 4 real images are constant (first: row 1, every pixel 0)"])
    }

    func testSingleShardUsesTheManifestBesideIt() throws {
        let directory = try temporaryDirectory(self)
        let paths = try InspectFixture.write(to: directory)
        XCTAssertTrue(try ShardCollection(path: paths[1]).verify().isClean)
        var manifest = try Manifest.read(from: directory + "/manifest.json")
        manifest.shards[1].sha256 = String(repeating: "f", count: 64)
        try manifest.write(to: directory + "/manifest.json")
        let report = try ShardCollection(path: paths[1]).verify()
        XCTAssertEqual(report.problems.map(\.description), ["\(paths[1]): SHA-256 differs from manifest.json (the file was changed or damaged)"])
    }

    func testOpeningErrors() throws {
        let directory = try temporaryDirectory(self)
        XCTAssertThrowsError(try ShardCollection(path: directory + "/absent")) { error in
            XCTAssertEqual((error as? FileError)?.description, "\(directory)/absent: no such file or directory")
        }
        XCTAssertThrowsError(try ShardCollection(path: directory)) { error in
            XCTAssertTrue((error as? FileError)?.problem.contains("no manifest.json") == true, "\(error)")
        }
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: directory + "/manifest.json"))
        XCTAssertThrowsError(try ShardCollection(path: directory)) { error in
            XCTAssertEqual((error as? FileError)?.path, directory + "/manifest.json")
        }
    }
}

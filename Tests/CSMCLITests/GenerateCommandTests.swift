import CSMFormats
import CSMModels
import CSMPipeline
import CSMShards
import Foundation
import XCTest

/// `csm generate` and `csm merge` end to end: splits, crashes and bad input.
final class GenerateCommandTests: XCTestCase {
    /// Prototypes made from the classifier fixture's features (classes it lacks stay at zero).
    static let prototypes: String = {
        let root = packageRoot()
        let reference = try! SafeTensorsFile(path: root.appendingPathComponent("Tests/Fixtures/resnet/fashion-mnist-resnet20.forward.safetensors").path)
        let features = try! reference.floats("features"), labels = try! reference.integers("labels")
        var sums = [Float](repeating: 0, count: 10 * 64), counts = [Float](repeating: 0, count: 10)
        for (i, label) in labels.enumerated() {
            counts[label] += 1
            for j in 0..<64 { sums[label * 64 + j] += features[i * 64 + j] }
        }
        for k in 0..<10 where counts[k] > 0 { for j in 0..<64 { sums[k * 64 + j] /= counts[k] } }
        let classifier = root.appendingPathComponent("Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors").path
        let path = NSTemporaryDirectory() + "csm-test-prototypes-\(getpid()).safetensors"
        let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        try! ClassPrototypes(prototypes: (0..<10).map { Array(sums[($0 * 64)..<(($0 + 1) * 64)]) }, counts: counts,
                             classifierSHA256: try! FileHash.sha256(ofFile: classifier), classifier: "fashion-mnist-resnet20.safetensors",
                             classNames: names, source: "test fixture").write(to: path)
        return path
    }()

    func arguments(_ out: String, _ extra: [String] = []) -> [String] {
        ["generate", "--out", out, "--prototypes", Self.prototypes, "--pairs", "7:9,0:1,2:4", "--groups-per-pair", "2",
         "--shard-size", "16", "--steps", "3", "--batch", "16"] + extra
    }

    func files(_ dir: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            result[name] = FileManager.default.contents(atPath: dir + "/" + name)
        }
        return result
    }

    func testSplitThreeWaysAndMergedEqualsSingleRun() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let single = try runCSM(arguments(dir + "/single"))
        XCTAssertEqual(single.status, 0, single.err)
        for i in 0..<3 {
            let part = try runCSM(arguments(dir + "/part\(i)", ["--shard-index", "\(i)", "--num-shards", "3"]))
            XCTAssertEqual(part.status, 0, part.err)
        }
        let merged = try runCSM(["merge", dir + "/part0", dir + "/part1", dir + "/part2", "--out", dir + "/merged"])
        XCTAssertEqual(merged.status, 0, merged.err)
        let expected = try files(dir + "/single")
        XCTAssertEqual(expected.keys.sorted(), ["manifest.json", "mixed-00000.h5", "mixed-00001.h5", "mixed-00002.h5"])
        XCTAssertEqual(try files(dir + "/merged"), expected)

        // The shards follow the schema and the labels are soft two-class labels.
        let reader = try ShardReader(path: dir + "/single/mixed-00001.h5")
        XCTAssertEqual(reader.count, 16)
        let labels = try reader.labels()
        for i in 0..<16 {
            let row = labels[(i * 10)..<((i + 1) * 10)]
            XCTAssertEqual(Double(row.reduce(0, +)), 1, accuracy: 1e-5)
            XCTAssertLessThanOrEqual(row.filter { $0 != 0 }.count, 2)
        }
    }

    /// A Slurm array task is worker SLURM_ARRAY_TASK_ID, also when resubmitted alone
    /// (`sbatch --array=1`: Slurm then says MIN = MAX = 1, COUNT = 1); the count comes from
    /// --num-shards. A Kubernetes Indexed Job's pod is worker JOB_COMPLETION_INDEX.
    func testSchedulerIndicesNameTheWorker() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let resubmitted = ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "1",
                           "SLURM_ARRAY_TASK_COUNT": "1", "JOB_COMPLETION_INDEX": ""]
        let flags = try runCSM(arguments(dir + "/flags", ["--shard-index", "1", "--num-shards", "3"]))
        XCTAssertEqual(flags.status, 0, flags.err)
        let slurm = try runCSM(arguments(dir + "/slurm", ["--num-shards", "3"]), environment: resubmitted)
        XCTAssertEqual(slurm.status, 0, slurm.err)
        XCTAssertEqual(try files(dir + "/flags").keys.sorted(), ["manifest.json", "mixed-00001.h5"])
        XCTAssertEqual(try files(dir + "/slurm"), try files(dir + "/flags"))

        let noCount = try runCSM(arguments(dir + "/no-count"), environment: resubmitted)
        XCTAssertNotEqual(noCount.status, 0)
        XCTAssertTrue(noCount.err.contains("SLURM_ARRAY_TASK_ID") && noCount.err.contains("--num-shards"), noCount.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/no-count/manifest.json"))

        let pod = try runCSM(arguments(dir + "/pod", ["--num-shards", "3"]),
                             environment: ["JOB_COMPLETION_INDEX": "2", "SLURM_ARRAY_TASK_ID": ""])
        XCTAssertEqual(pod.status, 0, pod.err)
        XCTAssertEqual(try files(dir + "/pod").keys.sorted(), ["manifest.json", "mixed-00002.h5"])
    }

    /// `csm merge parts/0 parts/2` of a three-way split: refused naming shard 1, nothing
    /// written; with --partial merged and then reported incomplete by csm inspect; the last
    /// part merged in later completes it.
    func testMergeOfIncompletePartsFailsNamingTheMissingShards() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<3 {
            let part = try runCSM(arguments(dir + "/parts/\(i)", ["--shard-index", "\(i)", "--num-shards", "3"]))
            XCTAssertEqual(part.status, 0, part.err)
        }
        let refused = try runCSM(["merge", dir + "/parts/0", dir + "/parts/2", "--out", dir + "/data"])
        XCTAssertEqual(refused.status, 1, refused.err)
        XCTAssertTrue(refused.err.contains("lacks shard 1 of 3") && refused.err.contains("--partial"), refused.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/data/manifest.json"))

        let partial = try runCSM(["merge", dir + "/parts/0", dir + "/parts/2", "--out", dir + "/data", "--partial"])
        XCTAssertEqual(partial.status, 0, partial.err)
        XCTAssertTrue(partial.err.contains("INCOMPLETE") && partial.err.contains("lacks shard 1 of 3"), partial.err)
        let inspect = try runCSM(["inspect", dir + "/data"])
        XCTAssertEqual(inspect.status, 0, inspect.err)
        XCTAssertTrue(inspect.out.contains("INCOMPLETE: lacks shard 1 of 3"), inspect.out)
        let verify = try runCSM(["inspect", dir + "/data", "--verify"])
        XCTAssertEqual(verify.status, 1, verify.out)
        XCTAssertTrue(verify.out.contains("incomplete dataset: lacks shard 1 of 3"), verify.out)
        let json = try runCSM(["inspect", dir + "/data", "--json"])
        let summary = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])?["summary"] as? [String: Any])
        XCTAssertEqual(summary["missing_shards"] as? [Int], [1])
        XCTAssertEqual(summary["expected_shards"] as? Int, 3)

        let completed = try runCSM(["merge", dir + "/parts/1", "--out", dir + "/data"])
        XCTAssertEqual(completed.status, 0, completed.err)
        XCTAssertFalse(completed.err.contains("INCOMPLETE"), completed.err)
        let clean = try runCSM(["inspect", dir + "/data", "--verify"])
        XCTAssertEqual(clean.status, 0, clean.out + clean.err)
        XCTAssertFalse(clean.out.contains("INCOMPLETE"), clean.out)
    }

    func testKilledRunResumesToTheSameBytes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = try runCSM(arguments(dir + "/reference"))
        XCTAssertEqual(reference.status, 0, reference.err)
        let expected = try files(dir + "/reference")
        for delay in [0.3, 0.9, 1.6] {
            let target = dir + "/killed-\(delay)"
            let process = Process()
            process.executableURL = csmExecutable()
            process.arguments = arguments(target)
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let resumed = try runCSM(arguments(target))
            XCTAssertEqual(resumed.status, 0, resumed.err)
            var got = try files(target)
            got = got.filter { !$0.key.hasPrefix(".") }     // a leftover temporary from the kill is not a shard
            XCTAssertEqual(got, expected, "killed after \(delay) s")
        }
    }

    func testRefusesAnotherConfigurationAndBadInput() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(try runCSM(arguments(dir + "/run", ["--pairs", "7:9", "--groups-per-pair", "1"])).status, 0)
        let other = try runCSM(arguments(dir + "/run", ["--pairs", "7:9", "--groups-per-pair", "1", "--sharpness", "3"]))
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.err.contains("another configuration"), other.err)

        // The network's arithmetic is part of the configuration (and recorded in it).
        let bf16 = try runCSM(arguments(dir + "/run", ["--pairs", "7:9", "--groups-per-pair", "1", "--precision", "bf16"]))
        XCTAssertNotEqual(bf16.status, 0)
        XCTAssertTrue(bf16.err.contains("another configuration"), bf16.err)
        let manifest = String(decoding: FileManager.default.contents(atPath: dir + "/run/manifest.json") ?? Data(), as: UTF8.self)
        XCTAssertFalse(manifest.contains("precision"), "fp32 manifests read as before")
        XCTAssertEqual(try runCSM(arguments(dir + "/bf16", ["--pairs", "7:9", "--groups-per-pair", "1", "--precision", "bf16"])).status, 0)
        let bf16Manifest = String(decoding: FileManager.default.contents(atPath: dir + "/bf16/manifest.json") ?? Data(), as: UTF8.self)
        XCTAssertTrue(bf16Manifest.contains("\"precision\" : \"bf16\"") || bf16Manifest.contains("\"precision\":\"bf16\""), bf16Manifest)

        let badPairs = try runCSM(arguments(dir + "/bad", ["--pairs", "7:7"]))
        XCTAssertNotEqual(badPairs.status, 0)
        XCTAssertTrue(badPairs.err.contains("7:7"), badPairs.err)

        // Prototypes made with another classifier.
        let foreign = dir + "/foreign.safetensors"
        try ClassPrototypes(prototypes: [[Float]](repeating: [Float](repeating: 0, count: 64), count: 10), counts: [Float](repeating: 1, count: 10),
                            classifierSHA256: String(repeating: "0", count: 64), classifier: "other", classNames: (0..<10).map { "c\($0)" },
                            source: "test").write(to: foreign)
        let wrong = try runCSM(["generate", "--out", dir + "/w", "--prototypes", foreign, "--pairs", "7:9", "--groups-per-pair", "1"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.err.contains("another classifier"), wrong.err)

        // Unwritable output directory.
        let locked = dir + "/locked"
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: locked)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: locked) }
        if getuid() != 0 {
            let unwritable = try runCSM(arguments(locked + "/out"))
            XCTAssertNotEqual(unwritable.status, 0)
            XCTAssertEqual(unwritable.err.split(separator: "\n").count, 1, unwritable.err)
        }
        let notADirectory = try runCSM(arguments(foreign))
        XCTAssertNotEqual(notADirectory.status, 0)
        XCTAssertFalse(notADirectory.err.contains("Fatal"), notADirectory.err)
    }
}

/// A full disk: one line, non-zero exit, nothing listed in a manifest, no crash.
final class FullDiskTests: XCTestCase {
    func testFullDiskIsACleanError() throws {
        let mountPoint = NSTemporaryDirectory() + "csm-full-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=32k", "tmpfs", mountPoint]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { throw XCTSkip("cannot run mount") }
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else { throw XCTSkip("cannot mount a small tmpfs here (needs root)") }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [mountPoint]
            try? umount.run()
            umount.waitUntilExit()
        }
        let out = mountPoint + "/data"
        let result = try runCSM(["generate", "--out", out, "--prototypes", GenerateCommandTests.prototypes, "--pairs", "7:9",
                                 "--groups-per-pair", "8", "--steps", "2", "--shard-size", "16"])
        XCTAssertEqual(result.status, 1, result.err)
        XCTAssertEqual(result.err.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count, 1, result.err)
        XCTAssertTrue(result.err.contains("No space left on device"), result.err)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        XCTAssertFalse(left.contains { $0.hasSuffix(".h5") }, "\(left)")
        if let manifest = FileManager.default.contents(atPath: out + "/manifest.json") {
            XCTAssertFalse(String(decoding: manifest, as: UTF8.self).contains(".h5"))
        }
    }
}

/// A model and a classifier that disagree are refused before any work.
final class MismatchTests: XCTestCase {
    func writeModel(_ edm: String, to path: String) throws {
        let configuration = try EDMConfiguration(json: edm, path: path)
        let items = try EDMModel.parameterShapes(configuration).map {
            SafeTensorsWriter.Item(name: $0.name, shape: $0.shape, values: [Float](repeating: 0.01, count: $0.shape.reduce(1, *)))
        }
        try SafeTensorsWriter.write(items, metadata: ["format": "edm-diffusion/1", "edm": edm], to: path)
    }

    func testModelAndClassifierMustAgree() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeModel(#"{"class_name": "VPPrecond", "init_kwargs": {"img_resolution": 28, "img_channels": 1, "label_dim": 5, "model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": []}}"#, to: dir + "/five.safetensors")
        let classes = try runCSM(["generate", "--out", dir + "/a", "--model", dir + "/five.safetensors", "--prototypes",
                                  GenerateCommandTests.prototypes, "--pairs", "0:1", "--groups-per-pair", "1"])
        XCTAssertNotEqual(classes.status, 0)
        XCTAssertTrue(classes.err.contains("5 classes") && classes.err.contains("10"), classes.err)

        try writeModel(#"{"class_name": "VPPrecond", "init_kwargs": {"img_resolution": 32, "img_channels": 3, "label_dim": 10, "model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": []}}"#, to: dir + "/rgb.safetensors")
        let size = try runCSM(["generate", "--out", dir + "/b", "--model", dir + "/rgb.safetensors", "--prototypes",
                               GenerateCommandTests.prototypes, "--pairs", "0:1", "--groups-per-pair", "1"])
        XCTAssertNotEqual(size.status, 0)
        XCTAssertTrue(size.err.contains("32×32×3"), size.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/b/manifest.json"))
    }
}

extension GenerateCommandTests {
    /// `csm pairs` weighs pairs by a classifier's confusion on labelled shards; `csm generate
    /// --pair-weights` spends the same budget by them. Split, merge and resume end with the
    /// single run's bytes; the manifest records the file and the allocation; bad files are one line.
    func testPairWeightsFromPairsDriveGenerate() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Labelled shards: mixed samples count as the class of their larger label share.
        let made = try runCSM(["generate", "--out", dir + "/val", "--prototypes", Self.prototypes, "--pairs", "7:9,0:1,2:4",
                               "--groups-per-pair", "2", "--steps", "3"])
        XCTAssertEqual(made.status, 0, made.err)
        let weightsPath = dir + "/weights.json"
        let pairs = try runCSM(["pairs", "--data", dir + "/val", "--out", weightsPath, "--picture", dir + "/confusion.png", "--floor", "0.5"])
        XCTAssertEqual(pairs.status, 0, pairs.err)
        XCTAssertTrue(pairs.out.contains("errors  confident  weight"), pairs.out)
        let weights = try PairWeights.read(from: weightsPath)
        XCTAssertEqual(weights.pairs.count, 45)
        XCTAssertEqual(weights.pairs.reduce(0) { $0 + $1.weight }, 1, accuracy: 1e-9)
        XCTAssertTrue(weights.pairs.allSatisfy { $0.weight >= 0.5 / 45 - 1e-12 })
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/confusion.png"))

        let weighted = arguments(dir + "/single", ["--pair-weights", weightsPath, "--shard-size", "8"])
        let single = try runCSM(weighted)
        XCTAssertEqual(single.status, 0, single.err)
        let manifest = try Manifest.read(from: dir + "/single/manifest.json")
        guard case .object(let config) = manifest.config, case .object(let use)? = config["pair_weights"],
              case .array(let groups)? = use["groups"], case .string(let sha)? = use["sha256"] else {
            return XCTFail("no pair_weights in \(manifest.config)")
        }
        XCTAssertEqual(sha, try FileHash.sha256(ofFile: weightsPath))
        let counts = try weights.allocation(pairs: [ClassPair(7, 9), ClassPair(0, 1), ClassPair(2, 4)], total: 6,
                                            classNames: weights.classNames, path: weightsPath)
        XCTAssertEqual(groups, counts.map { .int(Int64($0)) })
        XCTAssertEqual(manifest.totalCount, 6 * 8)

        for i in 0..<2 {
            let part = try runCSM(arguments(dir + "/part\(i)", ["--pair-weights", weightsPath, "--shard-size", "8", "--shard-index", "\(i)",
                                                                "--num-shards", "2"]))
            XCTAssertEqual(part.status, 0, part.err)
        }
        let merged = try runCSM(["merge", dir + "/part0", dir + "/part1", "--out", dir + "/merged"])
        XCTAssertEqual(merged.status, 0, merged.err)
        XCTAssertEqual(try files(dir + "/merged"), try files(dir + "/single"))

        // Resume: a run that lost its last shards ends with the same bytes.
        try FileManager.default.copyItem(atPath: dir + "/part0", toPath: dir + "/resumed")
        let resumed = try runCSM(weighted.map { $0 == dir + "/single" ? dir + "/resumed" : $0 })
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("already done"), resumed.err)
        XCTAssertEqual(try files(dir + "/resumed"), try files(dir + "/single"))

        // The same budget with other weights is another configuration.
        var other = weights
        other.pairs[0].weight += 1
        try other.write(to: dir + "/other.json")
        let refused = try runCSM(weighted.map { $0 == weightsPath ? dir + "/other.json" : $0 })
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("another configuration"), refused.err)

        // A file for other classes, or one that lacks a pair, is one line naming it.
        var renamed = weights
        renamed.classNames[0] = "Top"
        try renamed.write(to: dir + "/renamed.json")
        let wrongClasses = try runCSM(arguments(dir + "/x", ["--pair-weights", dir + "/renamed.json"]))
        XCTAssertNotEqual(wrongClasses.status, 0)
        XCTAssertTrue(wrongClasses.err.contains(dir + "/renamed.json: weights for the classes"), wrongClasses.err)
        var partial = weights
        partial.pairs.removeAll { $0.a == 7 && $0.b == 9 }
        try partial.write(to: dir + "/partial.json")
        let lacking = try runCSM(arguments(dir + "/y", ["--pair-weights", dir + "/partial.json"]))
        XCTAssertNotEqual(lacking.status, 0)
        XCTAssertTrue(lacking.err.contains("lists no weight for the pair Sneaker:Ankle boot"), lacking.err)
        XCTAssertEqual(lacking.err.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count, 1, lacking.err)
    }
}

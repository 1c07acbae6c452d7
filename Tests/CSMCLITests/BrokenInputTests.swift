import CSMFormats
import CSMShards
import Foundation
import XCTest

/// What never turns into data that looks valid: model files with a NaN or ±Inf weight,
/// samples that overflow, a training step that diverges; and stop requests (SIGTERM), which
/// end a run cleanly so that the rerun ends with the same bytes as an uninterrupted one.
final class BrokenInputTests: XCTestCase {
    var dir = ""
    let root = packageRoot().path
    var diffusionModel: String { root + "/Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors" }
    var classifier: String { root + "/Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors" }
    var prototypes: String { root + "/Datasets/fashion-mnist/fashion-mnist-resnet20.prototypes.safetensors" }

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A copy of safetensors file `path` in which element `index` of F32 tensor `tensor` is `value`.
    func poisoned(_ path: String, tensor: String, index: Int, value: Float, name: String) throws -> String {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let entry = try XCTUnwrap(header[tensor] as? [String: Any], "no tensor \(tensor) in \(path)")
        XCTAssertEqual(entry["dtype"] as? String, "F32")
        let start = 8 + headerLength + (try XCTUnwrap((entry["data_offsets"] as? [Int])?.first)) + 4 * index
        withUnsafeBytes(of: value.bitPattern.littleEndian) { for (i, byte) in $0.enumerated() { bytes[start + i] = byte } }
        let out = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        return out
    }

    /// Asserts a failed run with one error line that contains every one of `words`.
    func assertRefused(_ result: (status: Int32, out: String, err: String), _ words: [String], file: StaticString = #filePath,
                       line: UInt = #line) {
        XCTAssertNotEqual(result.status, 0, file: file, line: line)
        let errors = result.err.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        XCTAssertEqual(errors.count, 1, result.err, file: file, line: line)
        for word in words { XCTAssertTrue(result.err.contains(word), "'\(word)' not in: \(result.err)", file: file, line: line) }
    }

    /// A real shard of `count` 28×28 images in 10 classes, in folder `name`.
    func writeReal(_ name: String, count: Int) throws -> String {
        let samples = ShardSamples.real(height: 28, width: 28, channels: 1, numClasses: 10,
                                        images: (0..<(count * 784)).map { UInt8(truncatingIfNeeded: $0 &* 37 / 7) },
                                        classes: (0..<count).map { Int32($0 % 10) })
        let folder = dir + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .real, classNames: (0..<10).map { "c\($0)" }, sharpness: .nan,
                                                                 createdBy: "test"), to: folder + "/real-00000.h5")
        return folder
    }

    // MARK: Non-finite weights

    func testEveryReaderRefusesANaNOrInfiniteWeight() throws {
        let nanModel = try poisoned(diffusionModel, tensor: "model.dec.14x14_block0.skip.weight", index: 7, value: .nan,
                                    name: "nan-edm.safetensors")
        let words = [nanModel, "model.dec.14x14_block0.skip.weight", "element 7 is nan"]
        assertRefused(try runCSM(["sample", "--model", nanModel, "--seeds", "0-1", "--out", dir + "/s.safetensors"]), words)
        assertRefused(try runCSM(["generate", "--model", nanModel, "--out", dir + "/g", "--pairs", "7:9", "--groups-per-pair", "1"]), words)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/g/manifest.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/s.safetensors"))
        let real = try writeReal("real", count: 4)
        assertRefused(try runCSM(["attribute", "index", "--model", nanModel, "--train", real, "--out", dir + "/a.h5", "--proj-dim", "8",
                                  "--levels", "1"]), words)

        let infClassifier = try poisoned(classifier, tensor: "layer1.0.conv1.weight", index: 3, value: -.infinity,
                                         name: "inf-resnet.safetensors")
        let classifierWords = [infClassifier, "layer1.0.conv1.weight", "element 3 is -inf"]
        assertRefused(try runCSM(["generate", "--classifier", infClassifier, "--out", dir + "/g2", "--pairs", "7:9",
                                  "--groups-per-pair", "1"]), classifierWords)
        assertRefused(try runCSM(["evaluate", "--classifier", infClassifier, "--data", real]), classifierWords)
        assertRefused(try runCSM(["prototypes", "--data", real, "--classifier", infClassifier, "--out", dir + "/p.safetensors"]),
                      classifierWords)
        assertRefused(try runCSM(["train", "--real", real, "--init", infClassifier, "--epochs", "1", "--out", dir + "/t.safetensors"]),
                      classifierWords)
        let nanPrototypes = try poisoned(prototypes, tensor: "prototypes", index: 0, value: .nan, name: "nan-prototypes.safetensors")
        assertRefused(try runCSM(["generate", "--prototypes", nanPrototypes, "--out", dir + "/g3", "--pairs", "7:9",
                                  "--groups-per-pair", "1"]), [nanPrototypes, "prototypes", "element 0 is nan"])
    }

    // MARK: Samples that overflow

    /// Latents that overflow float32 once scaled by σ_max stop sampling with the image and
    /// the network evaluation named, and nothing is written.
    func testAnOverflowingLatentStopsSampling() throws {
        let reference = try SafeTensorsFile(path: root + "/Tests/Fixtures/edm/fashion-mnist-edm-vp32.sample.safetensors")
        let shape = try reference.shape(of: "latents")
        var latents = try reference.floats("latents")
        let second = latents.count / shape[0]
        for i in second..<(2 * second) { latents[i] = 1e37 }
        let input = dir + "/latents.safetensors"
        try SafeTensorsWriter.write([.init(name: "latents", shape: shape, values: latents),
                                     .init(name: "class_labels", shape: try reference.shape(of: "class_labels"),
                                           values: try reference.floats("class_labels"))], metadata: [:], to: input)
        let result = try runCSM(["sample", "--latents", input, "--labels", input, "--steps", "4", "--out", dir + "/images.safetensors"])
        assertRefused(result, ["image 1", "non-finite at network evaluation 1", "nothing was written"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/images.safetensors"))
    }

    /// A model whose finite weights overflow stops generate with the group's seed named;
    /// no shard, manifest or temporary file is left.
    func testAnOverflowingModelStopsGenerateBeforeAnyShardIsWritten() throws {
        let model = try poisoned(diffusionModel, tensor: "model.dec.14x14_block0.skip.weight", index: 7, value: 3e38,
                                 name: "huge-edm.safetensors")
        let out = dir + "/g"
        let result = try runCSM(["generate", "--model", model, "--out", out, "--pairs", "7:9", "--groups-per-pair", "1", "--steps", "3"])
        assertRefused(result, ["shard 0, group 0 (seed ", "pair 7:9", "non-finite", "nothing of this shard was written"])
        let left = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        XCTAssertTrue(left.allSatisfy { !$0.hasSuffix(".h5") && !$0.hasSuffix(".tmp") && $0 != "manifest.json" }, "\(left)")
    }

    // MARK: Training that diverges

    /// An exploding learning rate in epoch 2 stops training at its second step with the step
    /// named; the checkpoint of epoch 1 is kept, and the rerun resumes from it.
    func testANonFiniteTrainingStepStopsAndKeepsTheLastGoodCheckpoint() throws {
        let real = try writeReal("real", count: 64)
        let out = dir + "/model.safetensors"
        let arguments = ["train", "--real", real, "--arch", "linear", "--epochs", "2", "--batch", "16", "--val-fraction", "0",
                         "--schedule", "multistep", "--milestones", "1", "--gamma-lr", "1e38", "--out", out]
        let first = try runCSM(arguments)
        assertRefused(first, ["training stopped", "not finite at epoch 2, step 6", "holds epoch 1"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + ".checkpoint"))
        let again = try runCSM(arguments)
        XCTAssertTrue(again.err.contains("resuming from \(out).checkpoint after epoch 1"), again.err)
        assertRefused(again, ["not finite at epoch 2, step 6"])
    }

    // MARK: Stop requests

    /// Starts csm with `arguments`, sends SIGTERM once `ready()` holds, and returns the exit
    /// status and stderr.
    func runStopped(_ arguments: [String], when ready: () -> Bool) throws -> (status: Int32, err: String) {
        let process = Process()
        process.executableURL = csmExecutable()
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot()
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while !ready() && process.isRunning && Date() < deadline { usleep(2000) }
        kill(process.processIdentifier, SIGTERM)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    func assertStopped(_ result: (status: Int32, err: String), file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, 143, "the run ended before the stop request: \(result.err)", file: file, line: line)
        XCTAssertTrue(result.err.contains("stopped by SIGTERM"), result.err, file: file, line: line)
        XCTAssertTrue(result.err.contains("rerun the same command"), result.err, file: file, line: line)
    }

    func files(_ folder: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            result[name] = FileManager.default.contents(atPath: folder + "/" + name)
        }
        return result
    }

    func testSIGTERMDuringGenerateKeepsFinishedShardsAndTheRerunIsByteIdentical() throws {
        let arguments = ["generate", "--pairs", "7:9,0:1", "--groups-per-pair", "4", "--shard-size", "8", "--steps", "4"]
        let straight = try runCSM(arguments + ["--out", dir + "/straight"])
        XCTAssertEqual(straight.status, 0, straight.err)
        let out = dir + "/stopped"
        let stopped = try runStopped(arguments + ["--out", out]) { FileManager.default.fileExists(atPath: out + "/manifest.json") }
        assertStopped(stopped)
        let kept = try files(out).keys.filter { !$0.hasPrefix(".") }.sorted()
        XCTAssertTrue(kept.contains("mixed-00000.h5") && kept.count < 9, "\(kept)")
        XCTAssertTrue(try files(out).keys.allSatisfy { !$0.hasSuffix(".tmp") })
        let resumed = try runCSM(arguments + ["--out", out])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("already done"), resumed.err)
        XCTAssertEqual(try files(out).filter { !$0.key.hasPrefix(".") }, try files(dir + "/straight").filter { !$0.key.hasPrefix(".") })
    }

    func testSIGTERMDuringTrainingKeepsTheCheckpointAndTheRerunIsByteIdentical() throws {
        let real = try writeReal("real", count: 600)
        let arguments = ["train", "--real", real, "--arch", "linear", "--epochs", "40", "--batch", "32", "--lr", "0.02", "--keep", "last"]
        let straight = try runCSM(arguments + ["--out", dir + "/a.safetensors"])
        XCTAssertEqual(straight.status, 0, straight.err)
        let out = dir + "/b.safetensors"
        let stopped = try runStopped(arguments + ["--out", out]) { FileManager.default.fileExists(atPath: out + ".checkpoint") }
        assertStopped(stopped)
        XCTAssertTrue(stopped.err.contains("\(out).checkpoint holds epoch"), stopped.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let resumed = try runCSM(arguments + ["--out", out])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("resuming from"), resumed.err)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.safetensors"), FileManager.default.contents(atPath: out))
    }

    func testSIGTERMDuringAttributionIndexKeepsFinishedChunksAndTheRerunIsByteIdentical() throws {
        let model = root + "/Tests/Fixtures/edm/ddpmpp-vp-28x1.safetensors"
        // 32 chunks: after the first is kept, the other 31 leave the stop request time to
        // arrive on a busy machine (with 6 chunks the run sometimes finished first, and with
        // 20 it did when builds and trainings shared the machine).
        let train = try writeReal("train", count: 64)
        func index(_ out: String) -> [String] {
            ["attribute", "index", "--model", model, "--train", train, "--out", out, "--proj-dim", "64", "--levels", "3", "--batch", "2"]
        }
        let straight = try runCSM(index(dir + "/a.h5"))
        XCTAssertEqual(straight.status, 0, straight.err)
        let out = dir + "/b.h5", parts = dir + "/.b.h5.parts"
        // The parts folder holds config.json from the start: wait for a finished chunk.
        let stopped = try runStopped(index(out)) {
            ((try? FileManager.default.contentsOfDirectory(atPath: parts)) ?? []).contains { $0.hasPrefix("chunk-") && $0.hasSuffix(".f32") }
        }
        assertStopped(stopped)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let resumed = try runCSM(index(out))
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("already done"), resumed.err)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.h5"), FileManager.default.contents(atPath: out))
    }
}

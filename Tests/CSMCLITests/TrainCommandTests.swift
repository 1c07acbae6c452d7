import CSMFormats
import CSMModels
import CSMShards
import Foundation
import XCTest

/// `csm train` and `csm evaluate --classifier` end to end, on shards written here.
final class TrainCommandTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// stderr without the progress lines (`epoch …`) and notes.
    func errorLines(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { !$0.hasPrefix("epoch ") && !$0.hasPrefix("note: ") }
    }

    /// A real (or mixed) shard of `count` samples of side `side` in `classes` classes that a
    /// linear classifier separates: class c brightens band c of the rows.
    @discardableResult
    func writeShard(_ name: String, count: Int, side: Int = 8, classes k: Int = 3, seed: Int = 0, mixedPairs: [(Int, Int)]? = nil) throws -> String {
        let path = dir + "/" + name
        var s = ShardSamples(height: side, width: side, channels: 1, numClasses: k, images: [], labels: [], classA: [], classB: [],
                             lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
        var random = UInt64(seed + 1) &* 0x9E37_79B9_7F4A_7C15
        for i in 0..<count {
            var weights = [Double](repeating: 0, count: k)
            var (a, b, lambda) = (i % k, -1, Float(1))
            if let pairs = mixedPairs {
                let pair = pairs[(i / 4) % pairs.count]
                (a, b, lambda) = (pair.0, pair.1, Float(i % 4) / 3)
                weights[a] += Double(lambda)
                weights[b] += 1 - Double(lambda)
            } else {
                weights[a] = 1
            }
            for p in 0..<(side * side) {
                random ^= random << 13; random ^= random >> 7; random ^= random << 17
                s.images.append(UInt8(40 + 170 * weights[(p / side) * k / side] + Double(random % 40)))
            }
            s.labels += weights.map(Float.init)
            s.classA.append(Int32(a))
            s.classB.append(Int32(b))
            s.lambdaGen.append(lambda)
            s.lambdaProj.append(mixedPairs == nil ? .nan : lambda)
            s.probA.append(lambda)
            s.probB.append(1 - lambda)
            s.consistent.append(1)
            s.group.append(mixedPairs == nil ? -1 : Int64(i / 4))
            s.seed.append(-1)
        }
        try ShardWriter().write(s, metadata: ShardMetadata(kind: mixedPairs == nil ? .real : .mixed, classNames: (0..<k).map { "c\($0)" },
                                                           sharpness: 0, createdBy: "test"), to: path)
        return path
    }

    func testTrainsAndEvaluatesALinearClassifier() throws {
        let real = try writeShard("real.h5", count: 120)
        let test = try writeShard("test.h5", count: 60, seed: 1)
        let model = dir + "/model.safetensors"
        // No augmentation: crops of 4 pixels would move the bands of these 8×8 images.
        let trained = try runCSM(["train", "--real", real, "--arch", "linear", "--epochs", "3", "--batch", "16", "--lr", "0.05",
                                  "--no-augment", "--json", "--out", model])
        XCTAssertEqual(trained.status, 0, trained.err)
        let lines = trained.out.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.count, 3, trained.out)
        XCTAssertGreaterThan((lines.last??["val_accuracy"] as? Double) ?? 0, 0.9, trained.out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: model + ".checkpoint"))
        let file = try SafeTensorsFile(path: model)
        XCTAssertEqual(file.metadata["format"], "linear-classifier/1")
        XCTAssertTrue(file.metadata["training"]?.contains("\"loss\"") ?? false)

        let evaluated = try runCSM(["evaluate", "--classifier", model, "--data", test, "--val-data", real, "--json",
                                    "--save-logits", dir + "/logits.safetensors"])
        XCTAssertEqual(evaluated.status, 0, evaluated.err)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(evaluated.out.utf8)) as? [String: Any])
        XCTAssertNotNil(json["temperature"])
        XCTAssertNotNil(json["ts_ece"])
        XCTAssertEqual(json["samples"] as? Int, 60)
        // The saved logits give the same metrics through the logits path.
        let again = try runCSM(["evaluate", "--logits", dir + "/logits.safetensors", "--json"])
        XCTAssertEqual(again.status, 0, again.err)
        let json2 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.out.utf8)) as? [String: Any])
        XCTAssertEqual(json2["ece"] as? Double ?? -1, json["ece"] as? Double ?? -2, accuracy: 1e-12)
    }

    /// --val-data validates on separate shards after every epoch (all of the training
    /// shards train): the last epoch's validation metrics are those `csm evaluate` gives.
    func testValidationShards() throws {
        let real = try writeShard("real.h5", count: 120)
        let validation = try writeShard("val.h5", count: 60, seed: 1)
        let model = dir + "/model.safetensors"
        let trained = try runCSM(["train", "--real", real, "--val-data", validation, "--arch", "linear", "--epochs", "2", "--batch", "16",
                                  "--lr", "0.05", "--no-augment", "--keep", "last", "--json", "--out", model])
        XCTAssertEqual(trained.status, 0, trained.err)
        let lines = trained.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.count, 2, trained.out)
        XCTAssertEqual(lines.last?["steps"] as? Int, 16, "120 training samples in batches of 16, twice")
        let evaluated = try runCSM(["evaluate", "--classifier", model, "--data", validation, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.err)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(evaluated.out.utf8)) as? [String: Any])
        XCTAssertEqual(lines.last?["val_accuracy"] as? Double ?? -1, json["accuracy"] as? Double ?? -2, accuracy: 1e-12)
        XCTAssertEqual(lines.last?["val_ece"] as? Double ?? -1, json["ece"] as? Double ?? -2, accuracy: 1e-6)

        let both = try runCSM(["train", "--real", real, "--val-data", validation, "--val-fraction", "0.1", "--arch", "linear",
                               "--epochs", "1", "--out", dir + "/other.safetensors"])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.err.contains("--val-data replaces the held-out share"), both.err)
        let mismatched = try writeShard("four.h5", count: 8, classes: 4)
        let refused = try runCSM(["train", "--real", real, "--val-data", mismatched, "--arch", "linear", "--epochs", "1",
                                  "--out", dir + "/other.safetensors"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains(mismatched), refused.err)
    }

    /// --consistent-only and --mixed-share reach the model's training metadata; bad values
    /// and use without --mixed are one-line errors.
    func testConsistentOnlyAndMixedShare() throws {
        let real = try writeShard("real.h5", count: 60)
        let mixed = try writeShard("mixed.h5", count: 48, mixedPairs: [(0, 1), (1, 2), (2, 0)])
        let model = dir + "/model.safetensors"
        let base = ["train", "--real", real, "--mixed", mixed, "--loss", "csm", "--arch", "linear", "--epochs", "1", "--batch", "16",
                    "--no-augment"]
        let trained = try runCSM(base + ["--consistent-only", "--mixed-share", "0.5", "--out", model])
        XCTAssertEqual(trained.status, 0, trained.err)
        let metadata = try SafeTensorsFile(path: model).metadata
        let training = try XCTUnwrap(metadata["training"])
        XCTAssertTrue(training.contains("\"consistentOnly\":true") && training.contains("\"mixedShare\":0.5"), training)
        XCTAssertTrue(metadata["provenance"]?.contains("consistent samples only, mixed share 0.5") ?? false, metadata["provenance"] ?? "")
        for (arguments, word) in [(base + ["--mixed-share", "0"], "--mixed-share"), (base + ["--mixed-share", "1.5"], "--mixed-share"),
                                  (["train", "--real", real, "--arch", "linear", "--consistent-only"], "--mixed")] {
            let result = try runCSM(arguments + ["--out", dir + "/x.safetensors"])
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(errorLines(result.err).count, 1, result.err)
            XCTAssertTrue(result.err.contains(word), result.err)
        }
    }

    func testResumeAfterSIGKILLEndsByteIdentical() throws {
        let real = try writeShard("real.h5", count: 600, side: 28, classes: 10)
        // --keep last: the file holds the epochs after the interruption, not a best one from before it.
        let arguments = ["train", "--real", real, "--arch", "linear", "--epochs", "60", "--batch", "32", "--lr", "0.02", "--clip", "2",
                         "--keep", "last"]
        let straight = try runCSM(arguments + ["--out", dir + "/a.safetensors"])
        XCTAssertEqual(straight.status, 0, straight.err)

        let out = dir + "/b.safetensors"
        let process = Process()
        process.executableURL = csmExecutable()
        process.arguments = arguments + ["--out", out]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out + ".checkpoint") && process.isRunning && Date() < deadline { usleep(1000) }
        // Stopped at once, so however fast the CPU the run cannot finish its 60 epochs first.
        kill(process.processIdentifier, SIGSTOP)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "the run ended before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let resumed = try runCSM(arguments + ["--out", out])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("resuming from"), resumed.err)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.safetensors"), FileManager.default.contents(atPath: out))

        // Another configuration over a checkpoint is refused.
        try FileManager.default.copyItem(atPath: out, toPath: dir + "/c.safetensors")
        let checkpoint = try runCSM(arguments + ["--epochs", "61", "--out", dir + "/d.safetensors", "--checkpoint", dir + "/c.safetensors"])
        XCTAssertNotEqual(checkpoint.status, 0)
        XCTAssertEqual(errorLines(checkpoint.err).count, 1, checkpoint.err)
    }

    func testBadInputIsOneLineAndFails() throws {
        let real = try writeShard("real.h5", count: 60)
        func refused(_ arguments: [String], _ words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let result = try runCSM(arguments)
            XCTAssertNotEqual(result.status, 0, file: file, line: line)
            XCTAssertEqual(errorLines(result.err).count, 1, result.err, file: file, line: line)
            for word in words { XCTAssertTrue(result.err.contains(word), "\(word) not in: \(result.err)", file: file, line: line) }
        }
        let model = dir + "/model.safetensors"
        let first = try runCSM(["train", "--real", real, "--arch", "linear", "--epochs", "1", "--batch", "16", "--json", "--out", model])
        XCTAssertEqual(first.status, 0, first.err)
        // One epoch: the default milestones (40% and 60% of the epochs) fall at 0 and are dropped.
        let record = try JSONSerialization.jsonObject(with: Data(first.out.utf8)) as? [String: Any]
        XCTAssertEqual(record?["lr"] as? Double, 0.1)
        // A network whose classes or image size differ from the shards'.
        let four = try writeShard("four.h5", count: 40, classes: 4)
        try refused(["train", "--real", four, "--init", model, "--epochs", "1", "--out", dir + "/x.safetensors"], [model, "3 classes", "4 classes"])
        let big = try writeShard("big.h5", count: 30, side: 10)
        try refused(["train", "--real", big, "--init", model, "--epochs", "1", "--out", dir + "/x.safetensors"], ["8×8×1", "10×10×1"])
        try refused(["evaluate", "--classifier", model, "--data", big], [big, "10×10×1"])
        // Mixed data without a trajectory for class 2.
        let mixed = try writeShard("mixed.h5", count: 16, mixedPairs: [(0, 1)])
        try refused(["train", "--real", real, "--mixed", mixed, "--loss", "csm", "--arch", "linear", "--epochs", "1", "--out", dir + "/y.safetensors"],
                    [mixed, "class 2 (c2)", "--skip-unpaired"])
        let skipped = try runCSM(["train", "--real", real, "--mixed", mixed, "--loss", "csm", "--arch", "linear", "--epochs", "1",
                                  "--skip-unpaired", "--out", dir + "/y.safetensors"])
        XCTAssertEqual(skipped.status, 0, skipped.err)
        // An empty split.
        let tiny = try writeShard("tiny.h5", count: 4)
        try refused(["train", "--real", tiny, "--arch", "linear", "--out", dir + "/z.safetensors"], [tiny, "validation split is empty"])
        // A loss that overflows.
        try refused(["train", "--real", real, "--arch", "linear", "--lr", "1e37", "--epochs", "3", "--out", dir + "/n.safetensors"],
                    ["training stopped", "epoch", "step"])
    }

    /// `--init FILE --no-augment --val-fraction 0 --max-steps 1 --batch N` on a shard of N
    /// images writes the weights after one SGD step on all of them: PyTorch's, from the
    /// fixture of tools/fixtures/make_sgd_step_fixture.py, within 1e-4 relative, for four losses.
    func testOneFullBatchStepFromTheCommandLineMatchesPyTorch() throws {
        let fixtures = packageRoot().appendingPathComponent("Tests/Fixtures/training")
        let fixture = try SafeTensorsFile(path: fixtures.appendingPathComponent("step.safetensors").path)
        let labels = try fixture.floats("labels").map { Int32($0) }
        var s = ShardSamples(height: 8, width: 8, channels: 1, numClasses: 3, images: try fixture.floats("images").map { UInt8($0) },
                             labels: labels.flatMap { c in (0..<3).map { $0 == c ? Float(1) : 0 } }, classA: labels,
                             classB: labels.map { _ in -1 }, lambdaGen: labels.map { _ in 1 }, lambdaProj: labels.map { _ in .nan },
                             probA: labels.map { _ in 1 }, probB: labels.map { _ in 0 }, consistent: labels.map { _ in 1 },
                             group: labels.map { _ in -1 }, seed: labels.map { _ in -1 })
        s.numClasses = 3
        let shard = dir + "/batch.h5"
        try ShardWriter().write(s, metadata: ShardMetadata(kind: .real, classNames: ["alpha", "beta", "gamma"], sharpness: 0,
                                                           createdBy: "test"), to: shard)
        let initial = fixtures.appendingPathComponent("init.safetensors").path
        for loss in ["ce", "ls", "focal", "bsce-gra"] {
            let out = dir + "/\(loss).safetensors"
            let result = try runCSM(["train", "--real", shard, "--init", initial, "--no-augment", "--val-fraction", "0", "--max-steps", "1",
                                     "--batch", "64", "--loss", loss, "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "5e-4",
                                     "--out", out])
            XCTAssertEqual(result.status, 0, result.err)
            let saved = try SafeTensorsFile(path: out)
            let reference = fixture.names.filter { $0.hasPrefix(loss + "/") }
            XCTAssertGreaterThan(reference.count, 10)
            for name in reference {
                let expected = try fixture.floats(name), actual = try saved.floats(String(name.dropFirst(loss.count + 1)))
                let scale = expected.map { abs($0) }.max() ?? 0
                let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1e-3), "\(loss): \(name) off by \(worst)")
            }
            XCTAssertEqual(try saved.floats("bn1.num_batches_tracked"), [1])
        }
    }

    /// A ResNet-20 preset trains a few steps on 8×8 shards and `csm evaluate` reads the result.
    func testResNetPresetTrainsAndEvaluates() throws {
        let real = try writeShard("real.h5", count: 48)
        let model = dir + "/resnet.safetensors"
        let trained = try runCSM(["train", "--real", real, "--arch", "resnet20", "--epochs", "2", "--batch", "16", "--json", "--out", model])
        XCTAssertEqual(trained.status, 0, trained.err)
        XCTAssertEqual(trained.out.split(separator: "\n").count, 2, trained.out)
        let file = try SafeTensorsFile(path: model)
        XCTAssertEqual(file.metadata["format"], "resnet-classifier/1")
        XCTAssertEqual(try file.shape(of: "layer3.2.conv2.weight"), [64, 64, 3, 3])
        XCTAssertEqual(try file.shape(of: "fc.weight"), [3, 64])
        let evaluated = try runCSM(["evaluate", "--classifier", model, "--data", real, "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.err)
    }

    /// The disk fills while the second checkpoint is written: one line, non-zero exit, and the
    /// first checkpoint intact. A tmpfs just larger than one checkpoint (needs root).
    func testFullDiskWhileCheckpointingKeepsThePreviousCheckpoint() throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a small tmpfs needs root") }
        let real = try writeShard("real.h5", count: 200, side: 28, classes: 10)
        let small = dir + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        // One checkpoint holds weights, momentum and the best weights: 3 × 31,400 floats ≈ 96 KB (+ header).
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=144k", "tmpfs", small]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else { throw XCTSkip("cannot mount a tmpfs here") }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [small]
            try? umount.run()
            umount.waitUntilExit()
        }
        let result = try runCSM(["train", "--real", real, "--arch", "linear", "--epochs", "3", "--batch", "50", "--lr", "0.01",
                                 "--out", small + "/model.safetensors"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(errorLines(result.err).count, 1, result.err)
        XCTAssertTrue(result.err.contains(small + "/model.safetensors.checkpoint"), result.err)
        let checkpoint = try SafeTensorsFile(path: small + "/model.safetensors.checkpoint")
        XCTAssertEqual(checkpoint.metadata["epochs_done"], "1")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: small), ["model.safetensors.checkpoint"])
    }
}

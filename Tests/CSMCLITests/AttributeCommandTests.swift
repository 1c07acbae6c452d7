import CSMFormats
import CSMShards
import Foundation
import XCTest

/// `csm attribute index` and `query` end to end on a small EDM network: files readable,
/// a killed or split index run ends with the same bytes, other configurations and bad input
/// refused with one line.
final class AttributeCommandTests: XCTestCase {
    var dir = ""
    let model = packageRoot().appendingPathComponent("Tests/Fixtures/edm/ddpmpp-vp-28x1.safetensors").path

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// One real shard of `count` 28×28 grey images in 10 classes, in its own folder.
    func writeReal(_ name: String, count: Int, side: Int = 28, classes: Int = 10) throws -> String {
        let s = ShardSamples.real(height: side, width: side, channels: 1, numClasses: classes,
                                  images: (0..<count).flatMap { i in (0..<(side * side)).map { UInt8(truncatingIfNeeded: (i + 1) &* $0 &* 7 / 5) } },
                                  classes: (0..<count).map { Int32($0 % classes) })
        try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: true)
        let path = dir + "/\(name)/real-00000.h5"
        try ShardWriter().write(s, metadata: ShardMetadata(kind: .real, classNames: (0..<classes).map { "c\($0)" }, sharpness: .nan,
                                                           createdBy: "test"), to: path)
        return dir + "/" + name
    }

    func index(_ train: String, _ out: String, _ extra: [String] = []) -> [String] {
        ["attribute", "index", "--model", model, "--train", train, "--out", out, "--proj-dim", "64", "--levels", "3", "--batch", "2"] + extra
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    func testIndexQueryResumeAndSplit() throws {
        let train = try writeReal("train", count: 10)
        let reference = try runCSM(index(train, dir + "/reference.h5"))
        XCTAssertEqual(reference.status, 0, reference.err)
        let expected = try XCTUnwrap(bytes(dir + "/reference.h5"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.reference.h5.parts"), "the parts folder is removed")

        // Rerunning is a no-op; another configuration is refused.
        let again = try runCSM(index(train, dir + "/reference.h5"))
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.err.contains("nothing to do"), again.err)
        let other = try runCSM(index(train, dir + "/reference.h5", ["--noise-seed", "1"]))
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.err.contains("another configuration"), other.err)
        XCTAssertEqual(bytes(dir + "/reference.h5"), expected)

        // Killed mid-run (once 1 and once 3 of its 5 chunks are kept), rerun: the same bytes.
        // The kill follows the kept chunks, not the clock, so a machine whose load changes
        // between runs cannot let the run finish first.
        for kept in [1, 3] {
            let out = dir + "/killed-\(kept).h5"
            let parts = dir + "/.killed-\(kept).h5.parts"
            let process = Process()
            process.executableURL = csmExecutable()
            process.arguments = index(train, out)
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(120)
            func chunks() -> Int {
                ((try? FileManager.default.contentsOfDirectory(atPath: parts)) ?? []).filter { $0.hasPrefix("chunk-") && $0.hasSuffix(".f32") }.count
            }
            while process.isRunning && Date() < deadline && chunks() < kept { usleep(1000) }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, "killed before the end")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "killed before the end")
            let resumed = try runCSM(index(train, out))
            XCTAssertEqual(resumed.status, 0, resumed.err)
            XCTAssertTrue(resumed.err.contains("already done)"), "the rerun keeps the finished chunks: \(resumed.err)")
            XCTAssertEqual(bytes(out), expected, "killed with \(kept) chunks kept")
        }

        // Two workers: the second to finish writes the same file.
        let first = try runCSM(index(train, dir + "/split.h5", ["--shard-index", "0", "--num-shards", "2"]))
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(first.err.contains("remain for other workers"), first.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/split.h5"))
        let second = try runCSM(index(train, dir + "/split.h5", ["--shard-index", "1", "--num-shards", "2"]))
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertEqual(bytes(dir + "/split.h5"), expected)

        // Query: every query gets its top training indices, best first; the kernel is kept.
        let queries = try writeReal("queries", count: 3)
        let query = try runCSM(["attribute", "query", "--model", model, "--features", dir + "/reference.h5", "--query", queries,
                                "--top", "4", "--out", dir + "/attributions.h5"])
        XCTAssertEqual(query.status, 0, query.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/reference.kernel.h5"))
        // h5py reads both files as docs/formats/attribution.md describes them (where python3 has h5py).
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import h5py, numpy"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        if probe.terminationStatus == 0 {
            let python = """
                import h5py, numpy as np, sys
                f = h5py.File(sys.argv[1], "r")
                assert f.attrs["schema"] == "csm-attributions/1" and f.attrs["top"] == 4
                assert f["train_index"].shape == (3, 4) and f["score"].shape == (3, 4)
                assert list(f["query_index"][:]) == [0, 1, 2]
                assert (np.diff(f["score"][:], axis=1) <= 0).all()
                g = h5py.File(sys.argv[2], "r")
                assert g.attrs["schema"] == "csm-attribution-features/1" and g["features"].shape == (10, 64)
                assert list(g["train_index"][:]) == list(range(10)) and (g["weight"][:] > 0).all()
                print("ok")
                """
            let check = Process()
            check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            check.arguments = ["python3", "-c", python, dir + "/attributions.h5", dir + "/reference.h5"]
            let pipe = Pipe()
            check.standardOutput = pipe
            check.standardError = pipe
            try check.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            check.waitUntilExit()
            XCTAssertEqual(check.terminationStatus, 0, output)
        }

        // The picture: each query beside its best training images.
        let picture = try runCSM(["inspect", "--attributions", dir + "/attributions.h5", "--grid", dir + "/attributions.png"])
        XCTAssertEqual(picture.status, 0, picture.err)
        XCTAssertTrue(picture.out.contains("3 queries × top 4"), picture.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/attributions.png"))
    }

    func testBadInputIsOneLineNamingTheFile() throws {
        let train = try writeReal("train", count: 2)
        func refused(_ arguments: [String], _ words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let result = try runCSM(arguments)
            XCTAssertNotEqual(result.status, 0, file: file, line: line)
            let message = result.err.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(message.split(separator: "\n").count, 1, message, file: file, line: line)
            for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)", file: file, line: line) }
        }
        try refused(index(dir + "/missing", dir + "/f.h5"), ["missing", "no such file"])
        let small = try writeReal("small", count: 2, side: 8)
        try refused(index(small, dir + "/f.h5"), ["real-00000.h5", "8×8×1", "28×28×1"])
        let fewClasses = try writeReal("three", count: 2, classes: 3)
        try refused(index(fewClasses, dir + "/f.h5"), ["real-00000.h5", "label_dim is 10"])
        let classifier = packageRoot().appendingPathComponent("Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors").path
        try refused(["attribute", "index", "--model", classifier, "--train", train, "--out", dir + "/f.h5"],
                    ["fashion-mnist-resnet20.safetensors", "edm-diffusion/1"])
        try refused(["attribute", "query", "--model", model, "--features", dir + "/none.h5", "--query", train, "--out", dir + "/a.h5"],
                    ["none.h5", "no such file"])
        try refused(["attribute", "query", "--model", model, "--features", train + "/real-00000.h5", "--query", train, "--out", dir + "/a.h5"],
                    ["real-00000.h5", "csm-attribution-features/1"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/f.h5"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/a.h5"))
    }
}

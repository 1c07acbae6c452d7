import CSMFormats
import CSMShards
import Foundation
import XCTest

/// `csm split` end to end: the outputs pass `csm inspect --verify` and train; errors are one line.
final class SplitCommandTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// One real shard of `count` 4×4 images in 3 classes (i % 3), without a manifest.
    func writeReal(count: Int) throws -> String {
        let s = ShardSamples.real(height: 4, width: 4, channels: 1, numClasses: 3,
                                  images: (0..<count).flatMap { i in (0..<16).map { UInt8(truncatingIfNeeded: i &* 13 + $0) } },
                                  classes: (0..<count).map { Int32($0 % 3) })
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let path = dir + "/data/real-train-00000.h5"
        try ShardWriter().write(s, metadata: ShardMetadata(kind: .real, classNames: ["a", "b", "c"], sharpness: .nan, createdBy: "test"),
                                to: path)
        return path
    }

    func testSplitVerifiesRerunsAndRefuses() throws {
        let shard = try writeReal(count: 90)
        let arguments = ["split", dir + "/data", "--fraction", "0.1", "--seed", "4", "--balanced", "--out", dir + "/val",
                         "--rest", dir + "/train"]
        let result = try runCSM(arguments)
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.out.contains("\(dir)/val: 9 samples in 1 shard"), result.out)
        XCTAssertTrue(result.out.contains("\(dir)/train: 81 samples in 1 shard"), result.out)
        for side in ["val", "train"] {
            let verify = try runCSM(["inspect", dir + "/" + side, "--verify"])
            XCTAssertEqual(verify.status, 0, verify.err)
            XCTAssertTrue(verify.out.contains("verify: OK"), verify.out)
        }
        let classes = try ShardReader(path: dir + "/val/real-out-00000.h5").classA()
        XCTAssertEqual(classes.filter { $0 == 0 }.count, 3)
        XCTAssertEqual(classes.filter { $0 == 2 }.count, 3)

        let hash = try FileHash.sha256(ofFile: dir + "/val/real-out-00000.h5")
        let again = try runCSM(arguments)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("already there, unchanged"), again.out)
        XCTAssertEqual(try FileHash.sha256(ofFile: dir + "/val/real-out-00000.h5"), hash)

        // The held-out side trains and evaluates like any real shards.
        let model = dir + "/model.safetensors"
        let trained = try runCSM(["train", "--real", dir + "/train", "--arch", "linear", "--epochs", "1", "--batch", "16",
                                  "--no-augment", "--out", model])
        XCTAssertEqual(trained.status, 0, trained.err)
        let evaluated = try runCSM(["evaluate", "--classifier", model, "--data", shard, "--val-data", dir + "/val", "--json"])
        XCTAssertEqual(evaluated.status, 0, evaluated.err)

        func refused(_ arguments: [String], _ words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let result = try runCSM(arguments)
            XCTAssertNotEqual(result.status, 0, file: file, line: line)
            XCTAssertEqual(result.err.split(separator: "\n").count, 1, result.err, file: file, line: line)
            for word in words { XCTAssertTrue(result.err.contains(word), "\(word) not in: \(result.err)", file: file, line: line) }
        }
        try refused(["split", shard, "--fraction", "1", "--out", dir + "/x"], ["--fraction", "between 0 and 1"])
        try refused(["split", shard, "--fraction", "0.2", "--out", dir + "/train"], [dir + "/train", "not empty"])
        try refused(["split", shard, "--fraction", "0.2", "--out", dir + "/y", "--rest", dir + "/y"], [dir + "/y", "same folder"])
        try refused(["split", shard, "--fraction", "0.2", "--out", dir + "/data"], [dir + "/data", "source shards"])
        try refused(["split", shard, "--fraction", "0.001", "--out", dir + "/z"], [dir + "/z", "no samples"])

        let help = try runCSM(["split", "--help"])
        XCTAssertTrue(help.out.contains("--balanced") && help.out.contains("--rest"), help.out)
    }
}

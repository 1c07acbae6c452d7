import CSMFormats
import CSMShards
import Foundation
import XCTest

/// `ShardMerge`: the parts of a split run join into the single run's files; what cannot be
/// merged is refused with one line naming the directory or file.
final class ShardMergeTests: XCTestCase {
    let config: JSONValue = .object(["num_shards": .int(3), "seed": .int(1)])

    /// A part directory holding shards `indices` of a 3-shard run with configuration `config`.
    func writePart(_ directory: String, indices: [Int], config: JSONValue? = nil) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var manifest = Manifest(config: config ?? self.config)
        for index in indices {
            let name = String(format: "mixed-%05d.h5", index)
            let samples = ShardTests.samples(count: 4 + index)
            try ShardWriter().write(samples, metadata: ShardMetadata(kind: .mixed, classNames: ["a", "b", "c", "d"], sharpness: 10,
                                                                     shardIndex: index, numShards: 3, createdBy: "test"),
                                    to: directory + "/" + name)
            manifest.record(.init(file: name, count: samples.count, sha256: try FileHash.sha256(ofFile: directory + "/" + name),
                                  shardIndex: index))
        }
        try manifest.write(to: directory + "/manifest.json")
    }

    func files(_ directory: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where !name.hasPrefix(".") {
            result[name] = FileManager.default.contents(atPath: directory + "/" + name)
        }
        return result
    }

    func testPartsJoinIntoTheSingleRun() throws {
        let directory = try temporaryDirectory(self)
        try writePart(directory + "/single", indices: [0, 1, 2])
        try writePart(directory + "/p0", indices: [0, 2])
        try writePart(directory + "/p1", indices: [1])
        let result = try ShardMerge.merge([directory + "/p0", directory + "/p1"], into: directory + "/all", partial: false)
        XCTAssertEqual(result.shards, 3)
        XCTAssertEqual(result.samples, 4 + 5 + 6)
        XCTAssertEqual(result.copied, 3)
        XCTAssertNil(result.lacking)
        XCTAssertEqual(try files(directory + "/all"), try files(directory + "/single"))
        // Again: nothing to copy, the same bytes.
        XCTAssertEqual(try ShardMerge.merge([directory + "/p0", directory + "/p1"], into: directory + "/all", partial: false).copied, 0)
        XCTAssertEqual(try files(directory + "/all"), try files(directory + "/single"))
    }

    func testWhatCannotBeMergedIsRefused() throws {
        let directory = try temporaryDirectory(self)
        try writePart(directory + "/p0", indices: [0])
        try writePart(directory + "/p1", indices: [1])
        func refused(_ inputs: [String], into out: String, _ expected: String, line: UInt = #line) {
            XCTAssertThrowsError(try ShardMerge.merge(inputs, into: out, partial: false), line: line) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error)", line: line)
            }
        }
        refused([directory + "/p0", directory + "/p1"], into: directory + "/out",
                "\(directory)/out: not merged: the run lacks shard 2 of 3 among the inputs")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/out/manifest.json"))
        let partial = try ShardMerge.merge([directory + "/p0", directory + "/p1"], into: directory + "/out", partial: true)
        XCTAssertEqual(partial.lacking, "lacks shard 2 of 3")

        try writePart(directory + "/other", indices: [2], config: .object(["num_shards": .int(3), "seed": .int(2)]))
        refused([directory + "/p0", directory + "/other"], into: directory + "/x", "\(directory)/other: made with another configuration")
        try FileManager.default.createDirectory(atPath: directory + "/empty", withIntermediateDirectories: true)
        refused([directory + "/empty"], into: directory + "/x", "\(directory)/empty: ")
        // A shard changed after its manifest was written.
        try writePart(directory + "/p2", indices: [2])
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: directory + "/p2/mixed-00002.h5"))
        try handle.seek(toOffset: 4000)
        try handle.write(contentsOf: Data([0x5A]))
        try handle.close()
        refused([directory + "/p0", directory + "/p1", directory + "/p2"], into: directory + "/y",
                "\(directory)/p2/mixed-00002.h5: SHA-256 does not match its manifest")
    }
}

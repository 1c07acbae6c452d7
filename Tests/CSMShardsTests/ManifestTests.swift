import CSMFormats
import CSMShards
import Foundation
import XCTest

final class ManifestTests: XCTestCase {
    static let config: JSONValue = .object([
        "model": .string("fashion-mnist-edm-vp32.safetensors"),
        "seed": .int(9_007_199_254_740_993),   // 2^53 + 1: must survive exactly
        "sharpness": .double(12.5),
        "pairs": .array([.array([.int(7), .int(9)]), .array([.int(0), .int(6)])]),
        "skip_inconsistent": .bool(false),
        "note": .null,
        "sampler": .object(["steps": .int(18), "sigma_min": .double(0.002)]),
    ])

    func testRoundTripAndAtomicReplace() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/manifest.json"
        var manifest = Manifest(config: Self.config)
        manifest.record(.init(file: "shard-00001.h5", count: 500, sha256: String(repeating: "b", count: 64), shardIndex: 1))
        manifest.record(.init(file: "shard-00000.h5", count: 512, sha256: String(repeating: "a", count: 64), shardIndex: 0))
        try manifest.write(to: path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["manifest.json"])

        let read = try Manifest.read(from: path)
        XCTAssertEqual(read, manifest)
        XCTAssertEqual(read.shards.map(\.shardIndex), [0, 1])
        XCTAssertEqual(read.totalCount, 1012)
        XCTAssertEqual(read.config["seed"], .int(9_007_199_254_740_993))
        XCTAssertEqual(read.config["sampler"]?["sigma_min"], .double(0.002))

        // The file uses the schema's key names.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: try XCTUnwrap(FileManager.default.contents(atPath: path))) as? [String: Any])
        XCTAssertEqual(json["schema"] as? String, "csm-manifest/1")
        let first = try XCTUnwrap((json["shards"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(first.keys), ["file", "count", "sha256", "shard_index"])

        // Equal manifests give equal bytes; recording an index again replaces its entry.
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        try read.write(to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), bytes)
        var updated = read
        updated.record(.init(file: "shard-00001.h5", count: 512, sha256: String(repeating: "c", count: 64), shardIndex: 1))
        XCTAssertEqual(updated.shards.count, 2)
        try updated.write(to: path)
        XCTAssertEqual(try Manifest.read(from: path).shards[1].count, 512)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/.manifest.json.tmp"))
    }

    func testRejectsWhatIsNotAManifest() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/manifest.json"
        let cases: [(String, String)] = [
            (#"{"schema": "csm-manifest/2", "shards": [], "config": {}}"#, "csm-manifest/2"),
            (#"{"schema": "csm-manifest/1", "config": {}}"#, "missing key 'shards'"),
            (#"{"schema": "csm-manifest/1", "shards": [{"file": "a.h5", "count": "many", "sha256": "", "shard_index": 0}], "config": {}}"#, "wrong type"),
            (#"{"schema": "csm-manifest/1", "shards": [{"file": "/etc/a.h5", "count": 1, "sha256": "", "shard_index": 0}], "config": {}}"#, "not a plain file name"),
            (#"{"schema": "csm-manifest/1", "shards": [{"file": "a.h5", "count": -1, "sha256": "", "shard_index": 0}], "config": {}}"#, "negative count"),
            ("{not json", "not valid JSON"),
            // Found by Fuzz/FuzzManifest: listing the missing shards of 2³¹ − 1 ran out of memory.
            (#"{"schema": "csm-manifest/1", "shards": [], "config": {"num_shards": 2147483647}}"#, "config.num_shards': is 2147483647, expected 1 to 1000000"),
            (#"{"schema": "csm-manifest/1", "shards": [], "config": {"num_shards": 0}}"#, "expected 1 to"),
        ]
        for (text, mention) in cases {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try Manifest.read(from: path)) { error in
                XCTAssertTrue(error is FileError, "\(error)")
                XCTAssertTrue("\(error)".hasPrefix(path), "\(error)")
                XCTAssertTrue("\(error)".contains(mention), "'\(error)' should mention '\(mention)'")
            }
        }
        XCTAssertThrowsError(try Manifest.read(from: directory + "/absent.json"))
    }

    func testMissingShardIndices() {
        var manifest = Manifest(config: .object(["num_shards": .int(4)]))
        XCTAssertEqual(manifest.expectedShardCount, 4)
        manifest.record(.init(file: "b.h5", count: 1, sha256: "", shardIndex: 2))
        XCTAssertEqual(manifest.missingShardIndices, [0, 1, 3])
        XCTAssertEqual(Manifest(config: .object([:])).missingShardIndices, [])
        XCTAssertNil(Manifest(config: .object(["num_shards": .string("4")])).expectedShardCount)
        XCTAssertEqual(Manifest.describeMissing([1], of: 3), "lacks shard 1 of 3")
        XCTAssertEqual(Manifest.describeMissing([0, 1, 2, 5, 7, 8], of: 9), "lacks shards 0–2, 5, 7, 8 of 9")
    }

    func testCoverageJoinsTheManifestsOfOneRun() throws {
        let directory = NSTemporaryDirectory() + "csm-coverage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config: JSONValue = .object(["num_shards": .int(3)])
        for (part, indices) in [("p0", [0]), ("p1", [1, 2]), ("other", [0])] {
            try FileManager.default.createDirectory(atPath: directory + "/" + part, withIntermediateDirectories: true)
            var manifest = Manifest(config: part == "other" ? .object(["num_shards": .int(2), "seed": .int(1)]) : config)
            for i in indices { manifest.record(.init(file: "s\(i).h5", count: 1, sha256: "", shardIndex: i)) }
            try manifest.write(to: directory + "/\(part)/manifest.json")
        }
        func coverage(_ parts: [String]) throws -> ShardCoverage {
            ShardCoverage(try parts.map { try ShardPaths(resolving: directory + "/" + $0) })
        }
        XCTAssertEqual(try coverage(["p0"]).gaps.map(\.missing), [[1, 2]])
        XCTAssertTrue(try coverage(["p0", "p1"]).isComplete)
        let two = try coverage(["p1", "other"])
        XCTAssertEqual(two.gaps.map(\.missing), [[0], [1]])
        XCTAssertThrowsError(try two.requireComplete(remedy: "or not")) { error in
            XCTAssertEqual("\(error)", "\(directory)/p1/manifest.json: incomplete dataset: lacks shard 0 of 3 (run the workers that write them and csm merge again; or not)")
        }
    }

    func testSHA256() throws {
        let directory = try temporaryDirectory(self)
        let cases = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ]
        for (text, digest) in cases {
            let path = directory + "/file"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try FileHash.sha256(ofFile: path), digest)
        }
        // FIPS 180-2's long vector: a million 'a's.
        let path = directory + "/million"
        try Data(repeating: UInt8(ascii: "a"), count: 1_000_000).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try FileHash.sha256(ofFile: path), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Several read blocks (1 MiB each) plus a tail: 3·2^20 + 5 'a's.
        try Data(repeating: UInt8(ascii: "a"), count: (3 << 20) + 5).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try FileHash.sha256(ofFile: path), "aff2c7498aae939dfb2fb1dc6c0c83fa3708b069428e51338801af7f5dc2bf0f")
        XCTAssertThrowsError(try FileHash.sha256(ofFile: directory + "/absent"))
    }
}

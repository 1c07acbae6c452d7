import CSMFormats
import CSMLoader
import CSMShards
import Foundation
import XCTest

/// `ShardSplit` on small sets written here: every sample has a unique `seed` value (its
/// position in the input), so that where each one went can be read back.
final class ShardSplitTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "csm-split-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// `perClass[c]` samples of class c, interleaved, over `shards` shards with a manifest.
    func writeSet(_ name: String = "data", perClass: [Int], shards: Int = 2, kind: ShardKind = .real) throws -> String {
        let dir = directory + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var classes: [Int] = []
        var left = perClass
        while left.contains(where: { $0 > 0 }) {
            for c in left.indices where left[c] > 0 {
                classes.append(c)
                left[c] -= 1
            }
        }
        let k = perClass.count, n = classes.count
        var manifest = Manifest(config: .object(["source": .string("test")]))
        let perShard = (n + shards - 1) / shards
        for s in 0..<shards {
            var samples = ShardSamples(height: 3, width: 2, channels: 1, numClasses: k, images: [], labels: [], classA: [], classB: [],
                                       lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
            for i in (s * perShard)..<min(n, (s + 1) * perShard) {
                let c = classes[i]
                samples.images += (0..<6).map { UInt8(truncatingIfNeeded: i * 7 + $0) }
                var label = [Float](repeating: 0, count: k)
                if kind == .real { label[c] = 1 } else { label[c] = 0.75; label[(c + 1) % k] = 0.25 }
                samples.labels += label
                samples.classA.append(Int32(c))
                samples.classB.append(kind == .real ? -1 : Int32((c + 1) % k))
                samples.lambdaGen.append(kind == .real ? 1 : Float(i % 4) / 3)
                samples.lambdaProj.append(kind == .real ? .nan : Float(i % 5) / 4)
                samples.probA.append(0.5 + Float(i % 3) / 10)
                samples.probB.append(0.1)
                samples.consistent.append(UInt8(i % 2))
                samples.group.append(kind == .real ? -1 : Int64(i / 4))
                samples.seed.append(Int64(i))
            }
            let file = String(format: "part-%05d.h5", s)
            let metadata = ShardMetadata(kind: kind, classNames: (0..<k).map { "class \($0)" }, sharpness: kind == .real ? .nan : 4,
                                         generator: "{\"g\":1}", annotator: "{\"a\":2}", shardIndex: s, numShards: shards,
                                         createdBy: "test")
            try ShardWriter().write(samples, metadata: metadata, to: dir + "/" + file)
            manifest.record(.init(file: file, count: samples.count, sha256: try FileHash.sha256(ofFile: dir + "/" + file), shardIndex: s))
        }
        try manifest.write(to: dir + "/manifest.json")
        return dir
    }

    /// Every column of every shard at `path`, in order, and the shards' metadata.
    func read(_ path: String) throws -> (samples: ShardSamples, metadata: [ShardMetadata]) {
        let readers = try ShardPaths(resolving: path).files.map { try ShardReader(path: $0) }
        var all = try readers[0].read()
        for reader in readers.dropFirst() { all.append(contentsOf: try reader.read()) }
        return (all, readers.map(\.metadata))
    }

    /// The bytes of every column of rows `rows` of `s`, one Data per column (NaN-safe).
    func columnBytes(_ s: ShardSamples, rows: [Int]) -> [Data] {
        let part = s.rows(rows)
        func bytes<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }
        return [bytes(part.images), bytes(part.labels), bytes(part.classA), bytes(part.classB), bytes(part.lambdaGen),
                bytes(part.lambdaProj), bytes(part.probA), bytes(part.probB), bytes(part.consistent), bytes(part.group), bytes(part.seed)]
    }

    func testEvenCounts() {
        XCTAssertEqual(ShardSplit.evenCounts(total: 26, sizes: [50, 30, 7]), [10, 9, 7])
        XCTAssertEqual(ShardSplit.evenCounts(total: 26, sizes: [50, 30, 70]), [9, 9, 8])
        XCTAssertEqual(ShardSplit.evenCounts(total: 52, sizes: [50, 30, 7]), [23, 22, 7])
        XCTAssertEqual(ShardSplit.evenCounts(total: 30, sizes: [10, 10, 10]), [10, 10, 10])
        XCTAssertEqual(ShardSplit.evenCounts(total: 0, sizes: [3, 4]), [0, 0])
    }

    func testBalancedCountsPerClass() throws {
        let data = try writeSet(perClass: [50, 30, 7])
        for (fraction, expected) in [(0.3, [10, 9, 7]), (0.6, [23, 22, 7])] {
            let out = directory + "/out-\(fraction)", rest = directory + "/rest-\(fraction)"
            try ShardSplit(fraction: fraction, seed: 1, balanced: true, createdBy: "test").run(source: data, out: out, rest: rest)
            let classes = try read(out).samples.classA
            XCTAssertEqual((0..<3).map { c in classes.filter { $0 == c }.count }, expected, "fraction \(fraction)")
            let restClasses = try read(rest).samples.classA
            XCTAssertEqual((0..<3).map { c in restClasses.filter { $0 == c }.count }, zip([50, 30, 7], expected).map { $0 - $1 })
        }
        // Unbalanced: round(fraction · N) samples, whatever their classes.
        try ShardSplit(fraction: 0.3, seed: 1, createdBy: "test").run(source: data, out: directory + "/plain", rest: nil)
        XCTAssertEqual(try read(directory + "/plain").samples.count, 26)
    }

    /// out ∪ rest is the input: every column byte for byte, each side in the input's order;
    /// the metadata is the input's but for the shard numbering; the loader opens both.
    func testOutAndRestAreTheInputInOrder() throws {
        for kind in [ShardKind.real, .mixed] {
            let data = try writeSet("data-\(kind)", perClass: [40, 25, 18], shards: 3, kind: kind)
            let out = directory + "/out-\(kind)", rest = directory + "/rest-\(kind)"
            var split = ShardSplit(fraction: 0.25, seed: 3, balanced: kind == .mixed, createdBy: "csm test")
            split.shardSize = 20
            let written = try split.run(source: data, out: out, rest: rest)
            XCTAssertEqual(written.map(\.samples), [21, 62])
            XCTAssertEqual(written.map(\.shards), [2, 4])
            let input = try read(data).samples
            let (a, aMeta) = try read(out), (b, bMeta) = try read(rest)
            let ids = a.seed.map(Int.init), others = b.seed.map(Int.init)
            XCTAssertEqual(ids, ids.sorted())
            XCTAssertEqual(others, others.sorted())
            XCTAssertEqual((ids + others).sorted(), Array(0..<input.count))
            XCTAssertEqual(columnBytes(a, rows: Array(0..<a.count)), columnBytes(input, rows: ids))
            XCTAssertEqual(columnBytes(b, rows: Array(0..<b.count)), columnBytes(input, rows: others))
            for (metadata, expected) in [(aMeta, 2), (bMeta, 4)] {
                XCTAssertEqual(metadata.map(\.shardIndex), Array(0..<expected))
                for m in metadata {
                    XCTAssertEqual(m.kind, kind)
                    XCTAssertEqual(m.classNames, ["class 0", "class 1", "class 2"])
                    XCTAssertEqual(m.generator, "{\"g\":1}")
                    XCTAssertEqual(m.annotator, "{\"a\":2}")
                    XCTAssertEqual(m.numShards, expected)
                    XCTAssertEqual(m.createdBy, "csm test")
                    XCTAssertTrue(kind == .real ? m.sharpness.isNaN : m.sharpness == 4)
                }
            }
            XCTAssertEqual(try ShardSet(path: out).count, 21)
            XCTAssertEqual(try ShardSet(path: rest).count, 62)
            let manifest = try Manifest.read(from: out + "/manifest.json")
            XCTAssertEqual(manifest.shards.map(\.file), ["\(kind.rawValue)-out-00000.h5", "\(kind.rawValue)-out-00001.h5"])
            XCTAssertEqual(manifest.config["fraction"], .double(0.25))
            XCTAssertEqual(manifest.config["seed"], .int(3))
            XCTAssertEqual(manifest.config["side"], .string("out"))
            XCTAssertEqual(manifest.config["balanced"], .bool(kind == .mixed))
            XCTAssertEqual(manifest.config["source_config"], .object(["source": .string("test")]))
            if case .array(let sources)? = manifest.config["source_shards"] {
                XCTAssertEqual(sources.count, 3)
                XCTAssertEqual(sources[0]["sha256"], .string(try FileHash.sha256(ofFile: data + "/part-00000.h5")))
            } else {
                XCTFail("no source_shards in \(manifest.config)")
            }
        }
    }

    func testDeterministicAndSeeded() throws {
        let data = try writeSet(perClass: [30, 30])
        func hashes(_ dir: String) throws -> [String] {
            try ShardPaths(resolving: dir).files.map { try FileHash.sha256(ofFile: $0) }
        }
        for (seed, name) in [(UInt64(5), "a"), (5, "b"), (6, "c")] {
            try ShardSplit(fraction: 0.2, seed: seed, balanced: true, createdBy: "test").run(source: data, out: directory + "/" + name,
                                                                                             rest: directory + "/" + name + "-rest")
        }
        XCTAssertEqual(try hashes(directory + "/a"), try hashes(directory + "/b"))
        XCTAssertEqual(try hashes(directory + "/a-rest"), try hashes(directory + "/b-rest"))
        XCTAssertNotEqual(try read(directory + "/a").samples.seed, try read(directory + "/c").samples.seed)

        // The same split again: nothing written, nothing changed.
        let before = try FileManager.default.attributesOfItem(atPath: directory + "/a/real-out-00000.h5")[.modificationDate] as? Date
        let again = try ShardSplit(fraction: 0.2, seed: 5, balanced: true, createdBy: "test").run(
            source: data, out: directory + "/a", rest: directory + "/a-rest")
        XCTAssertEqual(again.map(\.alreadyDone), [true, true])
        let after = try FileManager.default.attributesOfItem(atPath: directory + "/a/real-out-00000.h5")[.modificationDate] as? Date
        XCTAssertEqual(before, after)
        // Interrupted after the manifest was written: the same split finishes it, byte for byte.
        try FileManager.default.removeItem(atPath: directory + "/b-rest/real-rest-00000.h5")
        let redone = try ShardSplit(fraction: 0.2, seed: 5, balanced: true, createdBy: "test").run(
            source: data, out: directory + "/b", rest: directory + "/b-rest")
        XCTAssertEqual(redone.map(\.alreadyDone), [true, false])
        XCTAssertEqual(try hashes(directory + "/a-rest"), try hashes(directory + "/b-rest"))
    }

    func testRefusals() throws {
        let data = try writeSet(perClass: [3, 3])
        func problem(_ fraction: Double, out: String, rest: String? = nil, source: String? = nil) -> String {
            do {
                try ShardSplit(fraction: fraction, seed: 0, createdBy: "test").run(source: source ?? data, out: out, rest: rest)
                return "no error"
            } catch let error as FileError {
                return error.description
            } catch {
                return "unexpected \(error)"
            }
        }
        XCTAssertTrue(problem(0, out: directory + "/x").contains("strictly between 0 and 1"))
        XCTAssertTrue(problem(1, out: directory + "/x").contains("strictly between 0 and 1"))
        XCTAssertTrue(problem(0.01, out: directory + "/x").contains("\(directory)/x: would hold no samples"))
        XCTAssertTrue(problem(0.99, out: directory + "/x", rest: directory + "/y").contains("\(directory)/y: "))
        XCTAssertTrue(problem(0.5, out: directory + "/x", rest: directory + "/x/").contains("--rest is the same folder as --out"))
        XCTAssertTrue(problem(0.5, out: data).contains("--out is where the source shards lie"))
        XCTAssertTrue(problem(0.5, out: directory + "/x", rest: data + "/manifest.json", source: data + "/manifest.json")
            .contains("--rest is where the source shards lie"))
        // A folder holding other files, or another split.
        try FileManager.default.createDirectory(atPath: directory + "/busy", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/busy/notes.txt", contents: Data("x".utf8)))
        XCTAssertTrue(problem(0.5, out: directory + "/busy").contains("\(directory)/busy: is not empty"))
        XCTAssertEqual(problem(0.5, out: directory + "/done"), "no error")
        XCTAssertTrue(problem(0.4, out: directory + "/done").contains("is not empty and does not hold this split"))
        // Nothing was written when the second folder was refused.
        XCTAssertTrue(problem(0.5, out: directory + "/fresh", rest: directory + "/busy").contains("busy: is not empty"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/fresh/manifest.json"))
        XCTAssertTrue(problem(0.5, out: directory + "/z", source: directory + "/missing").contains("missing: no such file"))
    }
}

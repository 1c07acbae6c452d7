import CSMFormats
import CSMShards
import Foundation
import XCTest

/// `csm inspect` end to end on shards written by hand: the summary, --json, --verify on
/// damaged shards, and the pictures.
final class InspectCommandTests: XCTestCase {
    static let classNames = ["Alpha", "Beta", "Gamma", "Delta"]
    static let levels: [Float] = [0, 0.5, 1]
    /// λ̂ − λ_gen per group: groups 0, 1 mix Alpha and Beta, groups 2, 3 Gamma and Delta.
    static let offsets: [Float] = [0.1, -0.1, 0.3, -0.2]
    static let side = 8

    /// Writes two shards of two groups each and a manifest into `directory`; returns the shard paths.
    @discardableResult
    func writeRun(_ directory: String) throws -> [String] {
        var manifest = Manifest(config: .object(["num_shards": .int(2)]))
        var paths: [String] = []
        for shard in 0..<2 {
            var s = ShardSamples(height: Self.side, width: Self.side, channels: 1, numClasses: 4, images: [], labels: [], classA: [],
                                 classB: [], lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
            for group in (2 * shard)..<(2 * shard + 2) {
                let (a, b): (Int32, Int32) = group < 2 ? (0, 1) : (2, 3)
                for lambda in Self.levels {
                    let projection = lambda + Self.offsets[group]
                    s.images += (0..<(Self.side * Self.side)).map { UInt8(($0 * 4 + group * 60 + Int(lambda * 100)) % 256) }
                    s.labels += (0..<4).map { $0 == Int(a) ? lambda : $0 == Int(b) ? 1 - lambda : 0 }
                    s.classA.append(a)
                    s.classB.append(b)
                    s.lambdaGen.append(lambda)
                    s.lambdaProj.append(projection)
                    s.probA.append(lambda)
                    s.probB.append(1 - lambda)
                    s.consistent.append(projection >= -0.15 && projection <= 1.15 ? 1 : 0)
                    s.group.append(Int64(group))
                    s.seed.append(Int64(group))
                }
            }
            let name = "mixed-0000\(shard).h5"
            let path = directory + "/" + name
            let metadata = ShardMetadata(kind: .mixed, classNames: Self.classNames, sharpness: 10, shardIndex: shard, numShards: 2,
                                         createdBy: "csm test")
            try ShardWriter(chunkBytes: 128).write(s, metadata: metadata, to: path)
            manifest.record(.init(file: name, count: s.count, sha256: try FileHash.sha256(ofFile: path), shardIndex: shard))
            paths.append(path)
        }
        try manifest.write(to: directory + "/manifest.json")
        return paths
    }

    /// Width and height from a PNG's header, or nil when `path` is not a PNG.
    func pngSize(_ path: String) -> (width: Int, height: Int)? {
        guard let data = FileManager.default.contents(atPath: path), data.count > 24,
              [UInt8](data.prefix(8)) == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] else { return nil }
        let bytes = [UInt8](data)
        func integer(_ at: Int) -> Int { (0..<4).reduce(0) { $0 << 8 | Int(bytes[at + $1]) } }
        return (integer(16), integer(20))
    }

    func testSummaryAndJSON() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeRun(dir)
        let result = try runCSM(["inspect", dir])
        XCTAssertEqual(result.status, 0, result.err)
        for expected in ["\(dir): 12 samples in 2 shards (manifest)", "4: Alpha, Beta, Gamma, Delta",
                         "12 samples: 2 pairs, 4 groups, 3 λ levels; sharpness 10", "83.3% (10 of 12 mixed samples)",
                         "mean 0.33 bits, max 1.00", "Alpha / Beta", "Gamma / Delta"] {
            XCTAssertTrue(result.out.contains(expected), "missing '\(expected)' in\n\(result.out)")
        }
        // The per-λ table: λ_gen, samples, consistent, mean λ̂ (λ + 0.025).
        let levelLine = try XCTUnwrap(result.out.split(separator: "\n").first { $0.hasPrefix("  0.50") })
        XCTAssertEqual(levelLine.split(separator: " ").prefix(4), ["0.50", "4", "100.0%", "0.53"])

        let json = try runCSM(["inspect", dir + "/manifest.json", "--json"])
        XCTAssertEqual(json.status, 0, json.err)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let summary = try XCTUnwrap(object["summary"] as? [String: Any])
        XCTAssertEqual(summary["samples"] as? Int, 12)
        XCTAssertEqual(summary["shards"] as? Int, 2)
        XCTAssertEqual(summary["groups"] as? Int, 4)
        XCTAssertEqual(summary["consistency_rate"] as? Double ?? 0, 10.0 / 12, accuracy: 1e-9)
        XCTAssertEqual(summary["class_names"] as? [String], Self.classNames)
        let pairs = try XCTUnwrap(summary["pairs"] as? [[String: Any]])
        XCTAssertEqual(pairs.map { $0["consistent"] as? Int }, [6, 4])
        XCTAssertNil(object["verify"])
    }

    func testVerifyCatchesAFlippedByteAndATruncatedShard() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try writeRun(dir)
        let clean = try runCSM(["inspect", dir, "--verify"])
        XCTAssertEqual(clean.status, 0, clean.err)
        XCTAssertTrue(clean.out.contains("verify: OK"), clean.out)

        // A flipped byte in a chunk of 'labels' of the second shard.
        let original = try XCTUnwrap(FileManager.default.contents(atPath: paths[1]))
        let chunk = try XCTUnwrap(try ShardReader(path: paths[1]).storageRanges(of: .labels).first)
        var bytes = [UInt8](original)
        bytes[chunk.lowerBound + chunk.count / 2] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: paths[1]))
        let flipped = try runCSM(["inspect", dir, "--verify"])
        XCTAssertEqual(flipped.status, 1, flipped.err)
        let lines = flipped.out.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("\(paths[1]): 'labels': ") && $0.contains("Fletcher32") }, flipped.out)
        XCTAssertTrue(lines.contains("\(paths[1]): SHA-256 differs from manifest.json (the file was changed or damaged)"), flipped.out)
        XCTAssertFalse(lines.contains { $0.hasPrefix(paths[0]) }, flipped.out)
        XCTAssertTrue(lines.contains { $0.hasPrefix("verify: FAILED") }, flipped.out)
        XCTAssertEqual(flipped.err, "csm inspect: 2 problems in \(dir)\n")

        // The same in JSON.
        let json = try runCSM(["inspect", dir, "--verify", "--json"])
        XCTAssertEqual(json.status, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let verify = try XCTUnwrap(object["verify"] as? [String: Any])
        XCTAssertEqual(verify["ok"] as? Bool, false)
        let problems = try XCTUnwrap(verify["problems"] as? [[String: Any]])
        XCTAssertTrue(problems.contains { $0["file"] as? String == paths[1] && $0["dataset"] as? String == "labels" }, "\(problems)")
        XCTAssertNil(object["summary"])
        try original.write(to: URL(fileURLWithPath: paths[1]))

        // The first shard cut in half.
        let first = try XCTUnwrap(FileManager.default.contents(atPath: paths[0]))
        try first.prefix(first.count / 2).write(to: URL(fileURLWithPath: paths[0]))
        let truncated = try runCSM(["inspect", dir, "--verify"])
        XCTAssertEqual(truncated.status, 1, truncated.err)
        XCTAssertTrue(truncated.out.split(separator: "\n").contains { $0.hasPrefix("\(paths[0]): '") && $0.contains("truncated") },
                      truncated.out)
        // Without --verify the damage is one error line, not a crash.
        let summary = try runCSM(["inspect", dir])
        XCTAssertEqual(summary.status, 1)
        XCTAssertEqual(summary.err.split(separator: "\n").count, 1, summary.err)
        XCTAssertTrue(summary.err.contains(paths[0]), summary.err)
    }

    func testGridAndPlotPictures() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeRun(dir)
        let result = try runCSM(["inspect", dir, "--grid", dir + "/grid.png", "--plot", dir + "/plot.png", "--groups", "2"])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.err.contains("2 groups × 3 λ"), result.err)
        XCTAssertTrue(result.err.contains("12 samples of 2 pairs"), result.err)
        let grid = try XCTUnwrap(pngSize(dir + "/grid.png"))
        let plot = try XCTUnwrap(pngSize(dir + "/plot.png"))
        // The plot: a 640 × 480 plotting area, axes and a legend.
        XCTAssertGreaterThan(plot.width, 640 + 200)
        XCTAssertGreaterThan(plot.height, 480 + 60)

        // Twice the groups: two more rows of 2× images with captions (wider row labels: Gamma <- Delta).
        let four = try runCSM(["inspect", dir, "--grid", dir + "/grid4.png", "--groups", "4"])
        XCTAssertEqual(four.status, 0, four.err)
        let grid4 = try XCTUnwrap(pngSize(dir + "/grid4.png"))
        XCTAssertGreaterThanOrEqual(grid4.width, grid.width)
        let row = (grid4.height - grid.height) / 2
        XCTAssertEqual(grid4.height - grid.height, 2 * row)
        XCTAssertTrue((2 * Self.side + 8)...(2 * Self.side + 40) ~= row, "row height \(row)")
        XCTAssertGreaterThan(grid.width, 3 * 2 * Self.side)

        // One pair, named in either order; the plot is the same size.
        let one = try runCSM(["inspect", dir, "--pair", "Delta:Gamma", "--grid", dir + "/one.png", "--plot", dir + "/one-plot.png"])
        XCTAssertEqual(one.status, 0, one.err)
        XCTAssertTrue(one.err.contains("2 groups × 3 λ") && one.err.contains("6 samples of 1 pair"), one.err)
        XCTAssertEqual(pngSize(dir + "/one-plot.png")?.height, plot.height)

        let unknown = try runCSM(["inspect", dir, "--pair", "Alpha:Omega", "--grid", dir + "/x.png"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.err.contains("Omega"), unknown.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.png"))
        let absent = try runCSM(["inspect", dir, "--pair", "Alpha:Gamma", "--plot", dir + "/x.png"])
        XCTAssertNotEqual(absent.status, 0)
        XCTAssertEqual(absent.err.split(separator: "\n").count, 1, absent.err)
        let notPNG = try runCSM(["inspect", dir, "--grid", dir + "/grid.jpg"])
        XCTAssertNotEqual(notPNG.status, 0)
    }

    func testMissingPathIsOneLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try runCSM(["inspect", dir + "/nothing"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.err, "Error: \(dir)/nothing: no such file or directory\n")
    }
}

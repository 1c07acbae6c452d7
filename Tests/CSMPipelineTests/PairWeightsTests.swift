import CSMFormats
import CSMPipeline
import Foundation
import XCTest

/// `PairWeights`: weights from a confusion, the allocation of a budget, the file and what it refuses.
final class PairWeightsTests: XCTestCase {
    let names = ["a", "b", "c"]

    /// Probabilities of one sample: `p` on `predicted`, the rest spread over the other classes.
    func row(_ predicted: Int, _ p: Double) -> [Double] {
        (0..<3).map { $0 == predicted ? p : (1 - p) / 2 }
    }

    func testWeightsFromASyntheticConfusion() throws {
        // True a called b twice (0.9, 0.7), true b called a once (0.6), true c called a once (0.5); the rest right.
        let probabilities = row(1, 0.9) + row(1, 0.7) + row(0, 0.6) + row(0, 0.5) + row(0, 0.8) + row(1, 0.8) + row(2, 0.8)
        let labels = [0, 0, 1, 2, 0, 1, 2]
        let weights = try PairWeights(probabilities: probabilities, labels: labels, classNames: names, floor: 0.3, source: nil)
        XCTAssertEqual(weights.pairs.map { [$0.a, $0.b] }, [[0, 1], [0, 2], [1, 2]])
        XCTAssertEqual(weights.pairs.map(\.errors), [3, 1, 0])
        XCTAssertEqual(weights.pairs[0].confidentErrors, 2.2, accuracy: 1e-12)
        XCTAssertEqual(weights.pairs[1].confidentErrors, 0.5, accuracy: 1e-12)
        // 0.7 shared as 2.2 : 0.5 : 0, plus 0.1 each.
        XCTAssertEqual(weights.pairs[0].weight, 0.7 * 2.2 / 2.7 + 0.1, accuracy: 1e-12)
        XCTAssertEqual(weights.pairs[1].weight, 0.7 * 0.5 / 2.7 + 0.1, accuracy: 1e-12)
        XCTAssertEqual(weights.pairs[2].weight, 0.1, accuracy: 1e-12, "the floor: no pair gets zero")
        XCTAssertEqual(weights.pairs.reduce(0) { $0 + $1.weight }, 1, accuracy: 1e-12)
        let table = weights.table(top: 2).split(separator: "\n").map(String.init)
        XCTAssertEqual(table.count, 3)
        XCTAssertTrue(table[0].hasPrefix("pair  ") && table[0].hasSuffix("  errors  confident  weight"), table[0])
        XCTAssertTrue(table[1].hasPrefix("\(names[0]) ↔ \(names[1]) ") && table[1].hasSuffix("       3       2.20  0.6704"), table[1])
        // A classifier that is never wrong: every pair alike.
        let perfect = try PairWeights(probabilities: row(0, 0.9) + row(2, 0.9), labels: [0, 2], classNames: names, floor: 0, source: nil)
        XCTAssertEqual(perfect.pairs.map(\.weight), [1.0 / 3, 1.0 / 3, 1.0 / 3])
        XCTAssertThrowsError(try PairWeights(probabilities: row(0, 1), labels: [0], classNames: names, floor: 1.5, source: nil))
    }

    func testAllocationSumsFloorsAndRounding() throws {
        let weights = try PairWeights(probabilities: row(1, 0.9) + row(1, 0.7) + row(0, 0.6) + row(0, 0.5), labels: [0, 0, 1, 2],
                                      classNames: names, floor: 0, source: nil)
        let pairs = [ClassPair(0, 1), ClassPair(0, 2), ClassPair(1, 2)]
        for total in [3, 4, 5, 10, 31, 100, 1000] {
            let counts = try weights.allocation(pairs: pairs, total: total, classNames: names, path: "w.json")
            XCTAssertEqual(counts.reduce(0, +), total)
            XCTAssertTrue(counts.allSatisfy { $0 >= 1 }, "\(counts)")
            XCTAssertEqual(counts, try weights.allocation(pairs: pairs, total: total, classNames: names, path: "w.json"))
        }
        // 97 beyond the first one each, shared 2.2 : 0.5 : 0 → 79.04, 17.96, 0; the one left over to the
        // largest remainder (0.96).
        XCTAssertEqual(try weights.allocation(pairs: pairs, total: 100, classNames: names, path: "w.json"), [80, 19, 1])
        // The pairs' order and direction are the plan's; the weights follow the pair: 98 as 18.15, 79.85.
        XCTAssertEqual(try weights.allocation(pairs: [ClassPair(2, 0), ClassPair(1, 0)], total: 100, classNames: names, path: "w.json"),
                       [19, 81])
        // Equal remainders go to the earlier pair.
        let even = try PairWeights(probabilities: row(0, 1), labels: [0], classNames: names, floor: 0, source: nil)
        XCTAssertEqual(try even.allocation(pairs: pairs, total: 4, classNames: names, path: "w.json"), [2, 1, 1])
        XCTAssertThrowsError(try weights.allocation(pairs: pairs, total: 2, classNames: names, path: "w.json"))
        XCTAssertThrowsError(try weights.allocation(pairs: pairs, total: 9, classNames: ["a", "b", "d"], path: "w.json")) {
            XCTAssertTrue("\($0)".hasPrefix("w.json: weights for the classes"), "\($0)")
        }
    }

    func testTheFileRoundTripsAndBadFilesAreOneLine() throws {
        let directory = NSTemporaryDirectory() + "csm-weights-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let weights = try PairWeights(probabilities: row(1, 0.9) + row(0, 0.6), labels: [0, 1], classNames: names, floor: 0.2,
                                      source: .init(classifier: "c.safetensors", classifierSHA256: "00", data: "val", samples: 2,
                                                    accuracy: 0))
        let path = directory + "/w.json"
        try weights.write(to: path)
        XCTAssertEqual(try PairWeights.read(from: path), weights)

        func refused(_ edit: (inout [String: Any]) -> Void, _ expected: String, line: UInt = #line) throws {
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
            edit(&object)
            let bad = directory + "/bad.json"
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: bad))
            XCTAssertThrowsError(try PairWeights.read(from: bad), line: line) { error in
                XCTAssertTrue("\(error)".hasPrefix(bad + ": ") && "\(error)".contains(expected), "\(error)", line: line)
                XCTAssertFalse("\(error)".contains("\n"), line: line)
            }
        }
        func setPair(_ index: Int, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
            { object in
                var pairs = object["pairs"] as! [[String: Any]]
                pairs[index][key] = value
                object["pairs"] = pairs
            }
        }
        try refused(setPair(1, "weight", -0.5), "pair 0:2 has weight -0.5")
        try refused(setPair(0, "b", 7), "pair 0:7 names a class outside 0..<3")
        try refused(setPair(2, "a", 0), "pair 0:2 is listed twice")
        try refused({ $0["schema"] = "csm-pair-weights/9" }, "expected csm-pair-weights/1")
        try refused({ $0["pairs"] = nil }, "missing 'pairs'")
        try refused({ object in
            object["pairs"] = (object["pairs"] as! [[String: Any]]).map { var p = $0; p["weight"] = 0; return p }
        }, "every weight is zero")
        try "{\"schema\": \"csm-pair-weights/1\", \"class_names\": [\"a\", \"b\"], \"floor\": 0, \"pairs\": [{\"a\": 0, \"b\": 1, \"weight\": 1e999, \"errors\": 0, \"confident_errors\": 0}]}".write(
            toFile: directory + "/bad.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PairWeights.read(from: directory + "/bad.json"))
    }

    func testAPlanWithGroupCountsNumbersGroupsPairByPair() throws {
        let pairs = [ClassPair(0, 1), ClassPair(2, 3), ClassPair(4, 5)]
        let plan = try GenerationPlan(pairs: pairs, groupCounts: [1, 3, 2], lambdas: 4, seed: 9, shardSize: 8)
        XCTAssertEqual(plan.groupCount, 6)
        XCTAssertEqual(plan.sampleCount, 24)
        XCTAssertEqual((0..<6).map { plan.pair(ofGroup: $0) }, [pairs[0], pairs[1], pairs[1], pairs[1], pairs[2], pairs[2]])
        XCTAssertEqual(plan.shardCount, 3)
        XCTAssertEqual(plan.groups(ofShard: 2), 4..<6)
        // Equal counts are the uniform plan, group for group.
        let uniform = try GenerationPlan(pairs: pairs, groupsPerPair: 2, lambdas: 4, seed: 9, shardSize: 8)
        XCTAssertEqual(try GenerationPlan(pairs: pairs, groupCounts: [2, 2, 2], lambdas: 4, seed: 9, shardSize: 8), uniform)
        XCTAssertThrowsError(try GenerationPlan(pairs: pairs, groupCounts: [1, 0, 2], lambdas: 4, seed: 9, shardSize: 8))
    }
}

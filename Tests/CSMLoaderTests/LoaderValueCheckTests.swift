import CSMFormats
import CSMLoader
import CSMShards
import Foundation
import XCTest

/// A shard whose values would index out of bounds (or poison a loss) is refused when the
/// loader opens it, in one line naming the file and the dataset, before any batch is made.
final class LoaderValueCheckTests: XCTestCase {
    private func shard(_ edit: (inout ShardSamples) -> Void) throws -> String {
        let dir = NSTemporaryDirectory() + "csm-loader-values-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let n = 4, k = 3
        var samples = ShardSamples(
            height: 2, width: 2, channels: 1, numClasses: k, images: [UInt8](repeating: 7, count: n * 4),
            labels: (0..<n).flatMap { _ in [Float(0.25), 0.75, 0] }, classA: [Int32](repeating: 1, count: n),
            classB: [Int32](repeating: 0, count: n), lambdaGen: [0, 0.25, 0.75, 1], lambdaProj: [0, 0.2, 0.8, 1],
            probA: [Float](repeating: 0.5, count: n), probB: [Float](repeating: 0.5, count: n),
            consistent: [UInt8](repeating: 1, count: n), group: [Int64](repeating: 0, count: n), seed: [Int64](repeating: 1, count: n))
        edit(&samples)
        let path = dir + "/mixed-00000.h5"
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .mixed, classNames: ["a", "b", "c"], sharpness: 4,
                                                                 createdBy: "test"), to: path)
        return path
    }

    private func assertRefused(_ path: String, dataset: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ShardSet(path: path), file: file, line: line) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)", file: file, line: line) }
            XCTAssertEqual(error.path, path, file: file, line: line)
            XCTAssertEqual(error.dataset, dataset, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        }
    }

    func testGoodShardOpensAndRederivesLabels() throws {
        let set = try ShardSet(path: try shard { _ in })
        XCTAssertEqual(set.count, 4)
        let label = set.label(2, sharpness: 4)
        XCTAssertEqual(Double(label[1]), SoftLabel.calibratedRatio(projection: 0.8, sharpness: 4), accuracy: 1e-6)
        XCTAssertEqual(label[0] + label[1], 1, accuracy: 1e-6)
    }

    func testClassIdsOutOfRangeAreRefused() throws {
        assertRefused(try shard { $0.classA[3] = 3 }, dataset: "class_a")
        assertRefused(try shard { $0.classB[0] = -1 }, dataset: "class_b")
        assertRefused(try shard { $0.classB[1] = -7 }, dataset: "class_b")
    }

    func testNonFiniteValuesAreRefused() throws {
        assertRefused(try shard { $0.labels[5] = .nan }, dataset: "labels")
        assertRefused(try shard { $0.lambdaProj[2] = -.infinity }, dataset: "lambda_proj")
        assertRefused(try shard { $0.probA[0] = .nan }, dataset: "prob_a")
    }
}

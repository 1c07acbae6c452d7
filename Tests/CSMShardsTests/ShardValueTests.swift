import CSMFormats
import CSMHDF5
import CSMShards
import Foundation
import XCTest

/// Values read from shards are checked before they index anything: class ids outside
/// [−1, K) (or −1 where a class is needed), and NaN/∞ where the schema forbids them, are one
/// `FileError` naming the file and the dataset, never an out-of-bounds access.
final class ShardValueTests: XCTestCase {
    /// A consistent mixed shard of `count` samples (class_b a class, finite values).
    private func samples(count: Int) -> ShardSamples {
        var samples = ShardTests.samples(count: count)
        samples.classB = samples.classA.map { ($0 + 1) % 4 }
        samples.lambdaProj = samples.lambdaProj.map { $0.isNaN ? 0.5 : $0 }
        return samples
    }

    private func write(_ samples: ShardSamples, kind: ShardKind = .mixed) throws -> String {
        let path = try temporaryDirectory(self) + "/shard.h5"
        var metadata = ShardTests.metadata
        metadata.kind = kind
        try ShardWriter().write(samples, metadata: metadata, to: path)
        return path
    }

    private func assertRefused(_ samples: ShardSamples, kind: ShardKind = .mixed, dataset: String, mentions: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try write(samples, kind: kind)
        XCTAssertThrowsError(try ShardReader(path: path).columns(), file: file, line: line) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)", file: file, line: line) }
            XCTAssertEqual(error.path, path, file: file, line: line)
            XCTAssertEqual(error.dataset, dataset, file: file, line: line)
            XCTAssertTrue(error.description.contains(mentions), error.description, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        }
    }

    func testGoodColumnsReadBack() throws {
        let good = samples(count: 9)
        let columns = try ShardReader(path: try write(good)).columns()
        XCTAssertEqual(columns.classA, good.classA)
        XCTAssertEqual(columns.classB, good.classB)
        XCTAssertTrue(columns.images.isEmpty)
        XCTAssertEqual(try ShardReader(path: try write(good)).columns(rows: 3..<5).classA, Array(good.classA[3..<5]))
    }

    func testClassIdsOutsideTheClassesAreRefused() throws {
        var bad = samples(count: 9)
        bad.classA[4] = 4   // K = 4
        try assertRefused(bad, dataset: "class_a", mentions: "row 4 holds 4, expected a class in 0..<4")
        bad = samples(count: 9)
        bad.classA[2] = -1
        try assertRefused(bad, dataset: "class_a", mentions: "row 2 holds -1")
        bad = samples(count: 9)
        bad.classB[7] = Int32.max
        try assertRefused(bad, dataset: "class_b", mentions: "row 7 holds 2147483647")
        bad = samples(count: 9)
        bad.classB[0] = -1   // a mixed sample needs its second class
        try assertRefused(bad, dataset: "class_b", mentions: "row 0 holds -1")
        bad = samples(count: 9)
        bad.classB = [Int32](repeating: -1, count: 9)
        bad.classB[5] = -2   // real data: −1 or a class
        try assertRefused(bad, kind: .real, dataset: "class_b", mentions: "row 5 holds -2, expected −1 or a class in 0..<4")
        bad.classB[5] = -1
        XCTAssertNoThrow(try ShardReader(path: try write(bad, kind: .real)).columns())
    }

    func testNonFiniteValuesWhereTheSchemaForbidsThemAreRefused() throws {
        var bad = samples(count: 9)
        bad.labels[4 * 3 + 1] = .nan
        try assertRefused(bad, dataset: "labels", mentions: "row 3 holds nan")
        bad = samples(count: 9)
        bad.lambdaGen[6] = .infinity
        try assertRefused(bad, dataset: "lambda_gen", mentions: "row 6 holds inf")
        bad = samples(count: 9)
        bad.probB[1] = -.infinity
        try assertRefused(bad, dataset: "prob_b", mentions: "row 1 holds -inf")
        bad = samples(count: 9)
        bad.lambdaProj[8] = .infinity
        try assertRefused(bad, dataset: "lambda_proj", mentions: "row 8 holds inf")
        var missing = samples(count: 9)
        missing.lambdaProj[8] = .nan   // no λ̂: allowed
        XCTAssertNoThrow(try ShardReader(path: try write(missing)).columns())
    }

    /// HDF5 dataset shapes are checked with overflow-safe arithmetic against what the file can
    /// hold before any buffer is made (a dataset of 1.6 TB declared in a file of a few KB).
    func testDatasetShapesLargerThanTheFileAreRefused() throws {
        try requireH5py()
        let path = try write(samples(count: 4))
        let script = """
            import sys, h5py, numpy as np
            f = h5py.File(sys.argv[1], 'r+')
            del f['images']; f.create_dataset('images', shape=(2**31, 28, 28, 1), dtype=np.uint8, chunks=(1, 28, 28, 1))
            f.close()
            """
        let result = try runPython(script, [path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertThrowsError(try ShardReader(path: path)) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
            XCTAssertEqual(error.dataset, "images")
            XCTAssertTrue(error.description.contains("more than the file can hold"), error.description)
        }
    }

    func testPlausibleSizeArithmeticDoesNotOverflow() {
        XCTAssertEqual(HDF5.plausibleBytes(fileSize: Int.max / 2), Int.max)
        XCTAssertEqual(HDF5.plausibleBytes(fileSize: 1000), 1_032_000 + (1 << 20))
    }
}

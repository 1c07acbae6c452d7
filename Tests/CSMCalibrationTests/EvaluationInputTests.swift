import CSMCalibration
import CSMFormats
import Foundation
import XCTest

/// `EvaluationInputReader`: logits and labels from safetensors and .npy files, labels as ids
/// or rows, and one-line errors naming the file at fault.
final class EvaluationInputTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "csm-evaluation-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A version-1 .npy file of little-endian float32 values.
    func writeNumPy(_ name: String, shape: [Int], values: [Float]) throws -> String {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        while (10 + header.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)] + Array(header.utf8)
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    let logits: [Float] = [2, 0, 0, 0, 3, 1, 0.5, 0.5, 4]          // 3 samples × 3 classes

    func testSafeTensorsWithIdsAndNumPyWithRowsGiveTheSameSet() throws {
        let file = dir + "/test.safetensors"
        try SafeTensorsWriter.write([.init(name: "logits", shape: [3, 3], values: logits),
                                     .init(name: "labels", shape: [3], values: [0, 2, 2])], to: file)
        let fromSafeTensors = try EvaluationInputReader().read(logits: file, labels: nil)
        XCTAssertEqual(fromSafeTensors.labels, [0, 2, 2])
        XCTAssertEqual(fromSafeTensors.sampleCount, 3)
        XCTAssertEqual(fromSafeTensors.classCount, 3)

        let npyLogits = try writeNumPy("logits.npy", shape: [3, 3], values: logits)
        let npyRows = try writeNumPy("labels.npy", shape: [3, 3], values: [0.9, 0.1, 0, 0, 0.2, 0.8, 0, 0.4, 0.6])
        let fromNumPy = try EvaluationInputReader().read(logits: npyLogits, labels: npyRows)
        XCTAssertEqual(fromNumPy.labels, [0, 2, 2])
        XCTAssertEqual(try fromNumPy.metrics(binCount: 15, temperature: 1).accuracy,
                       try fromSafeTensors.metrics(binCount: 15, temperature: 1).accuracy)
        XCTAssertEqual(try fromNumPy.metrics(binCount: 15, temperature: 1).ece,
                       try fromSafeTensors.metrics(binCount: 15, temperature: 1).ece, accuracy: 1e-12)
    }

    func testBadInputNamesTheFile() throws {
        let npyLogits = try writeNumPy("logits.npy", shape: [3, 3], values: logits)
        func refused(_ labels: String?, _ expected: String, line: UInt = #line) {
            XCTAssertThrowsError(try EvaluationInputReader().read(logits: npyLogits, labels: labels), line: line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
            }
        }
        refused(nil, "\(npyLogits): a .npy file holds only logits")
        let short = try writeNumPy("short.npy", shape: [2], values: [0, 1])
        refused(short, "\(short): 2 labels for 3 rows of logits")
        let outside = try writeNumPy("outside.npy", shape: [3], values: [0, 1, 7])
        refused(outside, "\(outside): label 7 of sample 2 is outside 0..<3")
        let fractional = try writeNumPy("fractional.npy", shape: [3], values: [0, 1.5, 2])
        refused(fractional, "\(fractional): label 1.5 of sample 1 is not a class id")
        let columns = try writeNumPy("columns.npy", shape: [3, 2], values: [1, 0, 0, 1, 1, 0])
        refused(columns, "\(columns): label rows have 2 columns, the logits have 3 classes")
        refused(dir + "/missing.npy", "\(dir)/missing.npy: no such file")
        let file = dir + "/other.safetensors"
        try SafeTensorsWriter.write([.init(name: "scores", shape: [3, 3], values: logits)], to: file)
        XCTAssertThrowsError(try EvaluationInputReader().read(logits: file, labels: nil)) {
            XCTAssertTrue("\($0)".contains("\(file): no tensor 'logits' (tensors: scores)"), "\($0)")
        }
    }

    func testSavedLogitsReadBack() throws {
        let set = EvaluationSet(logitsPath: "model", labelsPath: "data", values: .float(logits), sampleCount: 3, classCount: 3,
                                labels: [0, 1, 2])
        let path = dir + "/saved.safetensors"
        try set.save(to: path)
        let again = try EvaluationInputReader().read(logits: path, labels: nil)
        XCTAssertEqual(again.labels, [0, 1, 2])
        guard case .float(let values) = again.values else { return XCTFail("float32 logits expected") }
        XCTAssertEqual(values, logits)
    }
}

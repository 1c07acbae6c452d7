import CSMFormats
import Foundation
import XCTest

final class NumPyArrayTests: XCTestCase {
    /// .npy bytes laid out as numpy.save writes them: magic, version, header length, the
    /// dict padded with spaces to a multiple of 64 bytes and ended by a newline, the data.
    private func npy(
        descr: String, shape: String, fortran: Bool = false, payload: [UInt8], version: UInt8 = 1,
        header override: String? = nil
    ) -> Data {
        let dict = override ?? "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
        let prefix = version == 1 ? 10 : 12
        var header = dict
        while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let length = header.utf8.count
        if version == 1 {
            bytes += [UInt8(length & 0xff), UInt8(length >> 8)]
        } else {
            bytes += (0..<4).map { UInt8((length >> (8 * $0)) & 0xff) }
        }
        return Data(bytes + Array(header.utf8) + payload)
    }

    private func bytes<T>(_ values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    func testReadsEachSupportedDType() throws {
        let f4 = try NumPyArray(data: npy(descr: "<f4", shape: "(2, 3)", payload: bytes([Float](arrayLiteral: 1, -2, 3.5, 0, 5, 6))), path: "a.npy")
        XCTAssertEqual(f4.dtype, .float32)
        XCTAssertEqual(f4.shape, [2, 3])
        XCTAssertEqual(f4.floats(), [1, -2, 3.5, 0, 5, 6])
        XCTAssertEqual(f4.doubles(), [1, -2, 3.5, 0, 5, 6])

        let f8 = try NumPyArray(data: npy(descr: "<f8", shape: "(3,)", payload: bytes([0.1, 0.2, 1e300])), path: "b.npy")
        XCTAssertEqual(f8.doubles(), [0.1, 0.2, 1e300])
        XCTAssertThrowsError(try f8.integers())

        let i8 = try NumPyArray(data: npy(descr: "<i8", shape: "(4,)", payload: bytes([Int64](arrayLiteral: 0, 9, -1, 1 << 40))), path: "c.npy")
        XCTAssertEqual(try i8.integers(), [0, 9, -1, 1 << 40])

        let i4 = try NumPyArray(data: npy(descr: "<i4", shape: "(2, 1)", payload: bytes([Int32](arrayLiteral: 7, -3))), path: "d.npy")
        XCTAssertEqual(try i4.integers(), [7, -3])
        XCTAssertEqual(i4.floats(), [7, -3])
    }

    func testReadsVersion2HeadersScalarsAndEmptyArrays() throws {
        let v2 = try NumPyArray(data: npy(descr: "<f4", shape: "(1, 2)", payload: bytes([Float](arrayLiteral: 4, 5)), version: 2), path: "v2.npy")
        XCTAssertEqual(v2.floats(), [4, 5])
        let scalar = try NumPyArray(data: npy(descr: "<i8", shape: "()", payload: bytes([Int64](arrayLiteral: 42))), path: "s.npy")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(try scalar.integers(), [42])
        let empty = try NumPyArray(data: npy(descr: "<f4", shape: "(0, 10)", payload: []), path: "e.npy")
        XCTAssertEqual(empty.elementCount, 0)
        XCTAssertEqual(empty.floats(), [])
        let reordered = try NumPyArray(
            data: npy(descr: "", shape: "", payload: bytes([Int32](arrayLiteral: 1)), header: "{\"shape\": (1,), \"fortran_order\": False, \"descr\": \"<i4\"}"),
            path: "r.npy")
        XCTAssertEqual(try reordered.integers(), [1])
    }

    func testReadsFromAFile() throws {
        let path = NSTemporaryDirectory() + "csm-npy-\(UUID().uuidString).npy"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try npy(descr: "<f4", shape: "(2,)", payload: bytes([Float](arrayLiteral: 1.5, 2.5))).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try NumPyArray(path: path).floats(), [1.5, 2.5])
    }

    func testErrorsNameTheFileAndTheProblem() {
        func problem(_ data: Data) -> String {
            do {
                _ = try NumPyArray(data: data, path: "x.npy")
                return "no error"
            } catch let error as FileError {
                XCTAssertEqual(error.path, "x.npy")
                XCTAssertTrue(error.description.hasPrefix("x.npy: "))
                return error.problem
            } catch {
                return "unexpected \(error)"
            }
        }
        let floats = bytes([Float](arrayLiteral: 1, 2))
        XCTAssertTrue(problem(Data("not numpy at all".utf8)).contains("magic"))
        XCTAssertTrue(problem(npy(descr: ">f4", shape: "(2,)", payload: floats)).contains("unsupported dtype '>f4'"))
        XCTAssertTrue(problem(npy(descr: "<f2", shape: "(2,)", payload: floats)).contains("unsupported dtype"))
        XCTAssertTrue(problem(npy(descr: "|O", shape: "(2,)", payload: floats)).contains("unsupported dtype"))
        XCTAssertTrue(problem(npy(descr: "<f4", shape: "(2,)", fortran: true, payload: floats)).contains("Fortran"))
        XCTAssertTrue(problem(npy(descr: "<f4", shape: "(3,)", payload: floats)).contains("needs 12 data bytes, the file has 8"))
        XCTAssertTrue(problem(npy(descr: "<f4", shape: "(1,)", payload: floats)).contains("needs 4 data bytes"))
        XCTAssertTrue(problem(npy(descr: "<f4", shape: "(2,", payload: floats)).contains("malformed"))
        XCTAssertTrue(problem(npy(descr: "<f4", shape: "(-2,)", payload: floats)).contains("malformed"))
        XCTAssertTrue(problem(npy(descr: "", shape: "", payload: floats, header: "{'descr': '<f4', 'shape': (2,)}")).contains("exactly"))
        XCTAssertTrue(problem(npy(descr: "<f4", shape: "(2,)", payload: floats, version: 9)).contains("version 9"))
        XCTAssertTrue(problem(Data(npy(descr: "<f4", shape: "(2,)", payload: floats).prefix(20))).contains("truncated"))
    }

    /// Sizes from the header are multiplied with overflow checks before any buffer is made:
    /// a shape whose element count, or byte count, overflows is refused in one line.
    func testHugeHeaderShapesAreRefusedBeforeAllocating() {
        for shape in ["(4611686018427387904, 4)", "(9223372036854775807, 9223372036854775807)", "(2305843009213693952,)",
                      "(99999999999999999999999,)"] {
            XCTAssertThrowsError(try NumPyArray(data: npy(descr: "<f8", shape: shape, payload: [0, 0, 0, 0, 0, 0, 0, 0]),
                                                path: "huge.npy"), shape) { error in
                guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
                XCTAssertEqual(error.path, "huge.npy")
                XCTAssertTrue(error.problem.contains("too large") || error.problem.contains("malformed"), error.description)
            }
        }
        // A version-2 header that claims 4 GB of header text is truncated, not read.
        var claim = Data([0x93] + Array("NUMPY".utf8) + [2, 0, 0xff, 0xff, 0xff, 0xff])
        claim.append(Data("{}".utf8))
        XCTAssertThrowsError(try NumPyArray(data: claim)) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testFloat32ElementsInPlace() throws {
        let values: [Float] = [0.5, -1, 2, 3, -0.25, 9]
        let array = try NumPyArray(data: npy(descr: "<f4", shape: "(3, 2)", payload: bytes(values)), path: "m.npy")
        XCTAssertEqual(try array.withFloat32Elements { Array($0) }, values)
        XCTAssertEqual(try array.withFloat32Elements { $0.reduce(0, +) }, values.reduce(0, +))
        let doubles = try NumPyArray(data: npy(descr: "<f8", shape: "(1,)", payload: bytes([1.0])), path: "d.npy")
        XCTAssertThrowsError(try doubles.withFloat32Elements { _ in 0 })
    }

    func testMissingFile() {
        XCTAssertThrowsError(try NumPyArray(path: "/nonexistent/logits.npy")) {
            XCTAssertEqual(String(describing: $0), "/nonexistent/logits.npy: no such file")
        }
    }
}

import CSMFormats
import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// Malformed and mismatched model files: each must give a typed error that names the file
/// and the problem, never a crash or an out-of-bounds read.
final class ModelFileValidationTests: XCTestCase {
    static let original = [UInt8](FileManager.default.contents(atPath: fixture("edm/ddpmpp-vp-28x1.safetensors"))!)

    /// The header JSON of the fixture and the data that follows it.
    func parts() -> (header: [String: Any], data: [UInt8]) {
        let bytes = Self.original
        var length = 0
        for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
        let header = try! JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as! [String: Any]
        return (header, Array(bytes[(8 + length)...]))
    }

    func assemble(_ header: [String: Any], _ data: [UInt8]) -> [UInt8] {
        let json = [UInt8](try! JSONSerialization.data(withJSONObject: header))
        var out: [UInt8] = []
        var length = UInt64(json.count)
        for _ in 0..<8 { out.append(UInt8(length & 0xff)); length >>= 8 }
        return out + json + data
    }

    func assertRejected(_ bytes: [UInt8], mentions: String, file: StaticString = #filePath, line: UInt = #line) {
        assertModelFileRejected(bytes, mentions: mentions, load: { _ = try EDMModel(path: $0) }, file: file, line: line)
    }

    func testEmptyFile() { assertRejected([], mentions: "empty file") }

    func testShorterThanHeaderLength() { assertRejected([1, 2, 3], mentions: "truncated") }

    func testTruncatedData() {
        assertRejected(Array(Self.original.prefix(Self.original.count - 100)), mentions: "past the end")
    }

    func testTruncatedHeader() { assertRejected(Array(Self.original.prefix(200)), mentions: "truncated") }

    func testAbsurdHeaderLength() {
        var bytes = Self.original
        for i in 0..<8 { bytes[i] = 0xff }
        bytes[7] = 0x7f
        assertRejected(bytes, mentions: "absurd")
    }

    func testOffsetsPastTheEnd() {
        var (header, data) = parts()
        var entry = header["model.map_layer0.bias"] as! [String: Any]
        entry["data_offsets"] = [data.count - 4, data.count + 60]
        header["model.map_layer0.bias"] = entry
        assertRejected(assemble(header, data), mentions: "past the end")
    }

    func testUnknownDType() {
        var (header, data) = parts()
        var entry = header["model.map_layer0.bias"] as! [String: Any]
        entry["dtype"] = "F8_E4M3"
        header["model.map_layer0.bias"] = entry
        assertRejected(assemble(header, data), mentions: "unknown dtype 'F8_E4M3'")
    }

    func testShapeDisagreesWithBytes() {
        var (header, data) = parts()
        var entry = header["model.map_layer0.bias"] as! [String: Any]
        entry["shape"] = [7]
        header["model.map_layer0.bias"] = entry
        assertRejected(assemble(header, data), mentions: "needs 28 bytes")
    }

    func testShapeDisagreesWithArchitecture() {
        var (header, data) = parts()
        var metadata = header["__metadata__"] as! [String: String]
        metadata["edm"] = metadata["edm"]!.replacingOccurrences(of: "\"model_channels\": 16", with: "\"model_channels\": 32")
        header["__metadata__"] = metadata
        assertRejected(assemble(header, data), mentions: "architecture in the metadata needs")
    }

    func testMissingTensor() {
        var (header, data) = parts()
        header.removeValue(forKey: "model.enc.14x14_block1.conv0.weight")
        assertRejected(assemble(header, data), mentions: "missing tensor 'model.enc.14x14_block1.conv0.weight'")
    }

    func testLeftoverTensor() {
        var (header, data) = parts()
        var metadata = header["__metadata__"] as! [String: String]
        metadata["edm"] = metadata["edm"]!.replacingOccurrences(of: "\"attn_resolutions\": [7]", with: "\"attn_resolutions\": []")
        header["__metadata__"] = metadata
        assertRejected(assemble(header, data), mentions: "unexpected tensor")
    }

    func testBadMetadataJSON() {
        var (header, data) = parts()
        var metadata = header["__metadata__"] as! [String: String]
        metadata["edm"] = "{\"class_name\": \"VPPrecond\", "
        header["__metadata__"] = metadata
        assertRejected(assemble(header, data), mentions: "metadata 'edm'")
    }

    func testHeaderNotJSON() {
        var bytes: [UInt8] = [16, 0, 0, 0, 0, 0, 0, 0]
        bytes += Array("not json at all!".utf8)
        assertRejected(bytes, mentions: "not valid JSON")
    }

    func testWrongFormat() {
        var (header, data) = parts()
        var metadata = header["__metadata__"] as! [String: String]
        metadata["format"] = "resnet-classifier/1"
        header["__metadata__"] = metadata
        assertRejected(assemble(header, data), mentions: "expected edm-diffusion/1")
    }

    func testDirectoryAndMissingFile() {
        XCTAssertThrowsError(try EDMModel(path: NSTemporaryDirectory())) { error in
            XCTAssertTrue("\(error)".contains("directory"))
        }
        XCTAssertThrowsError(try EDMModel(path: "/nonexistent/model.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("no such file"))
        }
    }

    /// Random byte flips in the header never crash the reader.
    func testHeaderCorruptionNeverCrashes() {
        var state: UInt64 = 42
        for _ in 0..<300 {
            var bytes = Self.original
            for _ in 0..<3 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let index = 8 + Int(state >> 33) % 2000
                bytes[index] = UInt8(truncatingIfNeeded: state >> 13)
            }
            _ = try? SafeTensorsFile(bytes: bytes, path: "fuzzed")
        }
    }
}

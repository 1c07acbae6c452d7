import CSMFormats
import Foundation
import XCTest

/// Inputs on which the libFuzzer harnesses of Fuzz/ crashed a parser of CSMFormats, each
/// reduced to its point: the parser must now refuse them with a `FileError`.
final class FuzzFindingsTests: XCTestCase {
    /// A safetensors image: 8-byte little-endian header length, the JSON header, the data.
    private func safetensors(header: String, data: [UInt8]) -> [UInt8] {
        let json = Array(header.utf8)
        return (0..<8).map { UInt8((json.count >> (8 * $0)) & 0xff) } + json + data
    }

    /// FuzzSafeTensors: `integers` trapped ("Not enough bits to represent the passed value")
    /// converting a U64 element above Int.max to Int.
    func testU64ElementAboveIntMaxIsAnErrorNotATrap() throws {
        let bytes = safetensors(header: #"{"n":{"dtype":"U64","shape":[2],"data_offsets":[0,16]}}"#,
                                data: [7, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8))
        let file = try SafeTensorsFile(bytes: bytes, path: "big.safetensors")
        XCTAssertThrowsError(try file.integers("n")) { error in
            XCTAssertEqual("\(error)", "big.safetensors: tensor 'n': holds 18446744073709551615 at element 1, larger than the largest Int")
        }
        let fits = safetensors(header: #"{"n":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}}"#,
                               data: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        XCTAssertEqual(try SafeTensorsFile(bytes: fits, path: "max.safetensors").integers("n"), [Int.max])
    }
}

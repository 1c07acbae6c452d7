import CSMFormats
import CSMModels
import Foundation
import XCTest

/// Writes `bytes` to a temporary file, loads it with `load`, and checks that loading fails
/// with a one-line `FileError` that names that file and mentions `mentions`.
func assertModelFileRejected(_ bytes: [UInt8], mentions: String, load: (String) throws -> Void,
                             file: StaticString = #filePath, line: UInt = #line) {
    let path = NSTemporaryDirectory() + "csm-bad-\(UUID().uuidString).safetensors"
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)), file: file, line: line)
    defer { try? FileManager.default.removeItem(atPath: path) }
    do {
        try load(path)
        XCTFail("accepted a bad file (expected: \(mentions))", file: file, line: line)
    } catch let error as FileError {
        XCTAssertEqual(error.path, path, file: file, line: line)
        XCTAssertTrue(error.description.contains(mentions), "'\(error.description)' should mention '\(mentions)'", file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
    } catch {
        XCTFail("untyped error \(error)", file: file, line: line)
    }
}

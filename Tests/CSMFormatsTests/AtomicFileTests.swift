import CSMFormats
import Foundation
import XCTest

/// A fresh, empty temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "csm-formats-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

final class AtomicFileTests: XCTestCase {
    func testWriteReplacesTheFileAndLeavesNoTemporary() throws {
        let dir = try temporaryDirectory(self)
        let path = dir + "/data.bin"
        try AtomicFile.write([1, 2, 3], to: path)
        try AtomicFile.write(Data([4, 5]), to: path)
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data([4, 5]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["data.bin"])
        XCTAssertEqual(AtomicFile.temporaryPath(for: path), dir + "/.data.bin.tmp")
    }

    func testFailedWriteKeepsTheOldFileAndRemovesTheTemporary() throws {
        let dir = try temporaryDirectory(self)
        let path = dir + "/keep.txt"
        try AtomicFile.write(Data("old".utf8), to: path)
        struct Broken: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: path) { temporary in
            XCTAssertTrue(FileManager.default.createFile(atPath: temporary, contents: Data("half".utf8)))
            throw Broken()
        }) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
            XCTAssertEqual(error.path, path)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), Data("old".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["keep.txt"])
    }

    func testWriteIntoAMissingFolderNamesTheFile() throws {
        let path = try temporaryDirectory(self) + "/absent/x.bin"
        XCTAssertThrowsError(try AtomicFile.write([0], to: path)) { error in
            XCTAssertEqual((error as? FileError)?.path, path, "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }

    func testCopyIsCompleteUnderItsName() throws {
        let dir = try temporaryDirectory(self)
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try AtomicFile.write(bytes, to: dir + "/source")
        try AtomicFile.copy(dir + "/source", to: dir + "/copy")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/copy"), Data(bytes))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["copy", "source"])
    }

    func testSHA256() throws {
        let dir = try temporaryDirectory(self)
        try AtomicFile.write(Data("abc".utf8), to: dir + "/abc")
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        XCTAssertEqual(try FileHash.sha256(ofFile: dir + "/abc"), expected)
        XCTAssertEqual(FileHash.sha256(of: Data("abc".utf8)), expected)
        XCTAssertTrue(FileHash.isSHA256(expected))
        XCTAssertThrowsError(try FileHash.sha256(ofFile: dir + "/absent")) { error in
            XCTAssertEqual((error as? FileError)?.path, dir + "/absent")
        }
    }

    func testFileErrorIsOneLineNamingFileAndPart() {
        XCTAssertEqual(FileError("a.h5", dataset: "labels", "bad\nvalue").description, "a.h5: 'labels': bad value")
        XCTAssertEqual(FileError("m.safetensors", tensor: "fc.weight", "has shape [2]").description,
                       "m.safetensors: tensor 'fc.weight': has shape [2]")
        XCTAssertEqual(FileError("x", "missing").description, "x: missing")
    }

    func testClassNames() {
        XCTAssertEqual(ClassNames.parse(#"["T-shirt/top", "Ünïcode"]"#), ["T-shirt/top", "Ünïcode"])
        XCTAssertNil(ClassNames.parse(#"["a", 1]"#))
        XCTAssertNil(ClassNames.parse("{}"))
        XCTAssertEqual(ClassNames.parse(ClassNames.json(["a/b", "c\"d"])), ["a/b", "c\"d"])
    }
}

import CSMFormats
import Foundation
import XCTest

/// One writer per output directory (the two-process case, with the csm binary, is in
/// CSMCLITests).
final class DirectoryLockTests: XCTestCase {
    func testSecondLockFailsAtOnceNamingTheHolder() throws {
        let dir = try temporaryDirectory(self) + "/out"
        let first = try DirectoryLock(directory: dir, command: "csm generate")
        XCTAssertThrowsError(try DirectoryLock(directory: dir, command: "csm merge")) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
            XCTAssertEqual(error.path, dir)
            XCTAssertTrue(error.description.contains("in use by another csm process (pid \(getpid()): csm generate)"), error.description)
        }
        first.release()
        XCTAssertNoThrow(try DirectoryLock(directory: dir, command: "csm merge"))
    }

    func testLockIsReleasedWhenItsOwnerGoesAway() throws {
        let dir = try temporaryDirectory(self)
        do { _ = try DirectoryLock(directory: dir, command: "csm import") }
        XCTAssertNoThrow(try DirectoryLock(directory: dir, command: "csm import"))
    }

    func testStaleLockFileDoesNotBlock() throws {
        let dir = try temporaryDirectory(self)
        // What a killed process leaves: the file, with no lock held on it.
        try Data("pid 999999: csm generate\n".utf8).write(to: URL(fileURLWithPath: dir + "/" + DirectoryLock.fileName))
        let lock = try DirectoryLock(directory: dir, command: "csm generate")
        lock.release()
    }
}

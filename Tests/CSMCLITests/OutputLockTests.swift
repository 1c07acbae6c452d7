import CSMFormats
import CSMShards
import Foundation
import XCTest

/// One writer per output directory, with two csm processes: a second `csm import` (or
/// `generate`) on a directory a running `csm generate` writes exits at once with a clear
/// message; once the first is killed (SIGKILL, so nothing cleans up), a rerun is not blocked.
final class OutputLockTests: XCTestCase {
    /// A tiny IDX dataset (3 images of 2×2, 2 classes) and its class-names file.
    private func writeIDX(in dir: String) throws -> [String] {
        func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (24 - 8 * $0) & 0xff) } }
        let images = bigEndian(0x803) + bigEndian(3) + bigEndian(2) + bigEndian(2) + (0..<12).map { UInt8($0 * 20) }
        let labels = bigEndian(0x801) + bigEndian(3) + [0, 1, 1]
        try AtomicFile.write(images, to: dir + "/images.idx")
        try AtomicFile.write(labels, to: dir + "/labels.idx")
        try AtomicFile.write(Data(#"["zero", "one"]"#.utf8), to: dir + "/names.json")
        return ["import", "idx", "--images", dir + "/images.idx", "--labels", dir + "/labels.idx", "--class-names", dir + "/names.json"]
    }

    func testSecondWriterExitsAtOnceAndAKilledWriterDoesNotBlock() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out"
        let importArguments = try writeIDX(in: dir) + ["--split", "train", "--out", out]

        // A long generate run holds the directory.
        let first = Process()
        first.executableURL = csmExecutable()
        first.arguments = ["generate", "--out", out, "--prototypes", GenerateCommandTests.prototypes, "--pairs", "7:9",
                           "--groups-per-pair", "64", "--shard-size", "512", "--steps", "18"]
        first.currentDirectoryURL = packageRoot()
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let lockFile = out + "/" + DirectoryLock.fileName
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline,
              !(FileManager.default.contents(atPath: lockFile).map { String(decoding: $0, as: UTF8.self).contains("csm generate") } ?? false) {
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertTrue(first.isRunning, "the first run should still be writing")

        for arguments in [importArguments, ["generate", "--out", out, "--pairs", "0:1"], ["merge", dir + "/absent", "--out", out]] {
            let started = Date()
            let second = try runCSM(arguments)
            XCTAssertNotEqual(second.status, 0, arguments.joined(separator: " "))
            let message = "\(out): in use by another csm process (pid \(first.processIdentifier): csm generate)"
            if arguments[0] != "merge" {
                XCTAssertTrue(second.err.contains(message), second.err)
                XCTAssertEqual(second.err.split(separator: "\n").count, 1, second.err)
                XCTAssertLessThan(Date().timeIntervalSince(started), 10, "exits at once")
            }
        }
        // merge checks its inputs first; with a real input it meets the lock too.
        try FileManager.default.createDirectory(atPath: dir + "/part", withIntermediateDirectories: true)
        try Manifest(config: .object([:])).write(to: dir + "/part/manifest.json")
        let merge = try runCSM(["merge", dir + "/part", "--out", out])
        XCTAssertNotEqual(merge.status, 0)
        XCTAssertTrue(merge.err.contains("in use by another csm process"), merge.err)

        // Killed: the kernel drops its lock; the lock file stays behind and blocks nothing.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        XCTAssertTrue(FileManager.default.fileExists(atPath: lockFile))
        let rerun = try runCSM(importArguments)
        XCTAssertEqual(rerun.status, 0, rerun.err)
        XCTAssertEqual(try ShardReader(path: out + "/real-train-00000.h5").count, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockFile), "a finished run removes its lock file")
    }
}

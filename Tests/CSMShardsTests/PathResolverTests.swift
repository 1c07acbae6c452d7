import CSMFormats
import CSMShards
import Foundation
import XCTest

/// The one path resolver (`ShardPaths`): manifest | directory | one .h5 file → shard files,
/// and the manifest entries it refuses.
final class PathResolverTests: XCTestCase {
    /// A directory with shards `names` (tiny real shards) and no manifest.
    private func directory(_ names: [String]) throws -> String {
        let dir = try temporaryDirectory(self)
        for (index, name) in names.enumerated() {
            try ShardWriter().write(ShardTests.samples(count: 2), metadata: ShardTests.metadata, to: dir + "/" + name)
            _ = index
        }
        return dir
    }

    private func writeManifest(_ dir: String, files: [String]) throws {
        var manifest = Manifest()
        for (index, file) in files.enumerated() {
            manifest.shards.append(.init(file: file, count: 2, sha256: String(repeating: "0", count: 64), shardIndex: index))
        }
        try AtomicFile.write(try manifest.encoded(), to: dir + "/manifest.json")
    }

    func testRules() throws {
        let dir = try directory(["b.h5", "a.h5", ".hidden.h5"])
        // A directory without a manifest: its .h5 files by name, hidden ones left out.
        let bare = try ShardPaths(resolving: dir)
        XCTAssertEqual(bare.source, .directory)
        XCTAssertEqual(bare.files, [dir + "/a.h5", dir + "/b.h5"])
        // A manifest, given or found, in shard-index order.
        var manifest = Manifest()
        manifest.record(.init(file: "a.h5", count: 2, sha256: "x", shardIndex: 1))
        manifest.record(.init(file: "b.h5", count: 2, sha256: "y", shardIndex: 0))
        try manifest.write(to: dir + "/manifest.json")
        for path in [dir, dir + "/manifest.json"] {
            let resolved = try ShardPaths(resolving: path)
            XCTAssertEqual(resolved.source, .manifest)
            XCTAssertEqual(resolved.files, [dir + "/b.h5", dir + "/a.h5"])
            XCTAssertEqual(resolved.members.map { $0.entry?.shardIndex }, [0, 1])
        }
        // One shard, with its entry when the manifest beside it lists it.
        let single = try ShardPaths(resolving: dir + "/a.h5")
        XCTAssertEqual(single.source, .file)
        XCTAssertEqual(single.files, [dir + "/a.h5"])
        XCTAssertEqual(single.members[0].entry?.shardIndex, 1)
        // Nothing there.
        let empty = try temporaryDirectory(self)
        XCTAssertThrowsError(try ShardPaths(resolving: empty)) { error in
            XCTAssertEqual("\(error)", "\(empty): holds no manifest.json and no .h5 shards")
        }
        XCTAssertThrowsError(try ShardPaths(resolving: empty + "/absent.h5")) { error in
            XCTAssertEqual("\(error)", "\(empty)/absent.h5: no such file or directory")
        }
    }

    func testManifestEntriesMustBePlainNamesInsideItsDirectory() throws {
        let outside = try directory(["secret.h5"])
        let cases: [(String, String)] = [
            ("../\((outside as NSString).lastPathComponent)/secret.h5", "not a plain file name"),
            ("..", "not a plain file name"),
            (outside + "/secret.h5", "not a plain file name"),
            ("sub/x.h5", "not a plain file name"),
            ("", "not a plain file name"),
        ]
        for (file, message) in cases {
            let dir = try temporaryDirectory(self)
            try writeManifest(dir, files: [file])
            XCTAssertThrowsError(try ShardPaths(resolving: dir), file) { error in
                guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
                XCTAssertEqual(error.path, dir + "/manifest.json")
                XCTAssertEqual(error.dataset, "shards")
                XCTAssertTrue(error.description.contains(message), error.description)
                XCTAssertFalse(error.description.contains("\n"))
            }
        }
    }

    func testSymbolicLinksOutOfTheDirectoryAreRefused() throws {
        let outside = try directory(["secret.h5"])
        let dir = try directory(["inside.h5"])
        try FileManager.default.createSymbolicLink(atPath: dir + "/escape.h5", withDestinationPath: outside + "/secret.h5")
        try FileManager.default.createSymbolicLink(atPath: dir + "/alias.h5", withDestinationPath: "inside.h5")
        try writeManifest(dir, files: ["alias.h5"])
        XCTAssertEqual(try ShardPaths(resolving: dir).files, [dir + "/alias.h5"], "a link inside the directory is fine")
        try writeManifest(dir, files: ["inside.h5", "escape.h5"])
        XCTAssertThrowsError(try ShardPaths(resolving: dir)) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
            XCTAssertEqual(error.path, dir + "/manifest.json")
            XCTAssertTrue(error.description.contains("'escape.h5' is a symbolic link to"), error.description)
            XCTAssertTrue(error.description.contains("outside the manifest's directory"), error.description)
        }
    }

    func testDuplicateEntriesAreRefused() throws {
        let dir = try temporaryDirectory(self)
        var manifest = Manifest()
        manifest.shards = [.init(file: "a.h5", count: 1, sha256: "", shardIndex: 0), .init(file: "b.h5", count: 1, sha256: "", shardIndex: 0)]
        try AtomicFile.write(try manifest.encoded(), to: dir + "/manifest.json")
        XCTAssertThrowsError(try ShardPaths(resolving: dir)) { error in
            XCTAssertTrue("\(error)".contains("lists shard index 0 twice"), "\(error)")
        }
        manifest.shards = [.init(file: "a.h5", count: 1, sha256: "", shardIndex: 0), .init(file: "a.h5", count: 1, sha256: "", shardIndex: 1)]
        XCTAssertThrowsError(try Manifest.decode(try manifest.encoded(), path: "m.json")) { error in
            XCTAssertEqual("\(error)", "m.json: 'shards': lists a.h5 twice")
        }
    }
}

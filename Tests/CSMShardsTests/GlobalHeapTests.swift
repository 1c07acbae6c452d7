import CSMFormats
import CSMShards
import Foundation
import XCTest

/// The string attributes of a shard (`schema`, `kind`, `class_names`, …) are variable-length
/// strings kept in an HDF5 global heap collection. HDF5 1.10 follows a damaged collection
/// into wild memory or an endless loop (found by `make fuzz`), so the reader checks the
/// collection and the heap IDs first: each damage below is one `FileError` naming the file
/// and the attribute, never a crash or a hang.
final class GlobalHeapTests: XCTestCase {
    /// A real shard's bytes and where its (single) global heap collection starts.
    private struct Shard {
        var bytes: [UInt8]
        let heap: Int

        /// The offsets of the heap's objects (index > 0) and of its free space (index 0).
        var objects: [(index: Int, offset: Int)] {
            var found: [(Int, Int)] = []
            let size = Int(read(heap + 8, 8))
            var at = heap + 16
            while at + 16 <= heap + size {
                let index = Int(read(at, 2)), objectSize = Int(read(at + 8, 8))
                found.append((index, at))
                at += index == 0 ? max(objectSize, 16) : 16 + (objectSize + 7) / 8 * 8
            }
            return found
        }

        /// Offsets of the stored heap IDs that point into this collection:
        /// [length u32][address u64][index u32].
        var heapIDs: [Int] {
            let address = (0..<8).map { UInt8(truncatingIfNeeded: heap >> (8 * $0)) }
            return (4..<(bytes.count - 12)).filter { at in
                Array(bytes[at..<(at + 8)]) == address && read(at + 8, 4) > 0 && read(at + 8, 4) < 100
            }.map { $0 - 4 }
        }

        func read(_ at: Int, _ width: Int) -> UInt64 {
            (0..<width).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[at + $1]) }
        }

        mutating func write(_ value: UInt64, at: Int, width: Int) {
            for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
    }

    /// A shard written by csm; `rewrittenByH5py` copies it with h5py's defaults, whose object
    /// headers carry no checksum, so that damage to a stored heap ID reaches the heap (csm's
    /// own files have checksummed headers, which HDF5 checks first).
    private func makeShard(rewrittenByH5py: Bool = false) throws -> (path: String, shard: Shard) {
        let folder = try temporaryDirectory(self)
        let path = folder + "/shard.h5"
        try ShardWriter().write(ShardTests.samples(count: 5), metadata: ShardTests.metadata, to: path)
        if rewrittenByH5py {
            try requireH5py()
            let script = """
                import sys, os, h5py
                with h5py.File(sys.argv[1], 'r') as a, h5py.File(sys.argv[1] + '.copy', 'w') as b:
                    for key in a: a.copy(key, b)
                    for key, value in a.attrs.items(): b.attrs[key] = value
                os.replace(sys.argv[1] + '.copy', sys.argv[1])
                """
            let result = try runPython(script, [path])
            XCTAssertEqual(result.status, 0, result.output)
        }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let signature = Array("GCOL".utf8)
        let heap = try XCTUnwrap((0..<(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == signature },
                                 "a shard keeps its string attributes in a global heap")
        return (path, Shard(bytes: bytes, heap: heap))
    }

    private func assertRefused(rewrittenByH5py: Bool = false, _ damage: (inout Shard) throws -> Void, mentions: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        var (path, shard) = try makeShard(rewrittenByH5py: rewrittenByH5py)
        try damage(&shard)
        try Data(shard.bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ShardReader(path: path), file: file, line: line) { error in
            guard let error = error as? FileError else { return XCTFail("untyped error \(error)", file: file, line: line) }
            XCTAssertEqual(error.path, path, file: file, line: line)
            XCTAssertNotNil(error.dataset, "names the attribute", file: file, line: line)
            XCTAssertTrue(error.description.contains(mentions), error.description, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        }
    }

    func testUndamagedHeapReadsBack() throws {
        for rewritten in [false, true] {
            let (path, shard) = try makeShard(rewrittenByH5py: rewritten)
            XCTAssertGreaterThan(shard.objects.filter { $0.index > 0 }.count, 3)
            XCTAssertFalse(shard.heapIDs.isEmpty)
            XCTAssertEqual(try ShardReader(path: path).metadata.classNames, ShardTests.metadata.classNames)
        }
    }

    /// A free-space object of size 0: HDF5 1.10 loops forever parsing the collection.
    func testFreeSpaceOfSizeZeroIsRefused() throws {
        try assertRefused({ shard in
            let free = try XCTUnwrap(shard.objects.first { $0.index == 0 })
            shard.write(0, at: free.offset + 8, width: 8)
        }, mentions: "do not tile it")
    }

    /// An object whose size runs past the collection: HDF5 copies past its buffer.
    func testObjectRunningPastTheCollectionIsRefused() throws {
        try assertRefused({ shard in
            let object = try XCTUnwrap(shard.objects.first { $0.index > 0 })
            shard.write(1 << 20, at: object.offset + 8, width: 8)
        }, mentions: "do not tile it")
    }

    func testCollectionLargerThanTheFileIsRefused() throws {
        try assertRefused({ shard in shard.write(1 << 40, at: shard.heap + 8, width: 8) },
                          mentions: "does not fit the file")
    }

    func testCollectionWithoutItsSignatureIsRefused() throws {
        try assertRefused({ shard in shard.bytes[shard.heap] = UInt8(ascii: "X") },
                          mentions: "not a global heap collection")
    }

    /// A heap ID naming an object the collection does not hold: HDF5 reads past its table.
    func testHeapIDNamingAMissingObjectIsRefused() throws {
        try assertRefused(rewrittenByH5py: true, { shard in
            for id in shard.heapIDs { shard.write(999, at: id + 12, width: 4) }
        }, mentions: "which is not there")
    }

    /// A heap ID whose length is shorter than its object: HDF5 copies the whole object
    /// into a buffer of the stated length.
    func testObjectLongerThanItsStringIsRefused() throws {
        try assertRefused(rewrittenByH5py: true, { shard in
            for id in shard.heapIDs { shard.write(1, at: id, width: 4) }
        }, mentions: "for a 1-byte string")
    }

    func testHeapIDOutsideTheFileIsRefused() throws {
        try assertRefused(rewrittenByH5py: true, { shard in
            for id in shard.heapIDs { shard.write(1 << 50, at: id + 4, width: 8) }
        }, mentions: "outside the file")
    }

    /// The inputs FuzzShard crashed or hung libhdf5 1.10 with (Tests/Fixtures/fuzz/): each
    /// is now one error naming the file and the attribute.
    func testInputsTheFuzzerCrashedOrHungOnAreRefused() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fuzz").path
        let inputs = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".h5") }.sorted()
        XCTAssertEqual(inputs.count, 4)
        for input in inputs {
            let path = folder + "/" + input
            XCTAssertThrowsError(try ShardReader(path: path), input) { error in
                guard let error = error as? FileError else { return XCTFail("untyped error \(error)") }
                XCTAssertEqual(error.path, path)
                XCTAssertTrue(error.description.contains("global heap"), error.description)
            }
        }
    }
}

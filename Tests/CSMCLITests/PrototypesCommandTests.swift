import CSMFormats
import CSMPipeline
import CSMShards
import Foundation
import XCTest

/// `csm prototypes` finds its shards by the one resolver: a manifest, its directory, or one
/// shard give the same prototypes.
final class PrototypesCommandTests: XCTestCase {
    func testManifestDirectoryAndShardGiveTheSamePrototypes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Ten 28×28 images, one per class, as an IDX pair.
        func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (24 - 8 * $0) & 0xff) } }
        let pixels = (0..<(10 * 28 * 28)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 / 784 &* 11) }
        try AtomicFile.write(bigEndian(0x803) + bigEndian(10) + bigEndian(28) + bigEndian(28) + pixels, to: dir + "/images.idx")
        try AtomicFile.write(bigEndian(0x801) + bigEndian(10) + (0..<10).map { UInt8($0) }, to: dir + "/labels.idx")
        let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        try AtomicFile.write(Data(ClassNames.json(names).utf8), to: dir + "/names.json")
        let imported = try runCSM(["import", "idx", "--images", dir + "/images.idx", "--labels", dir + "/labels.idx",
                                   "--class-names", dir + "/names.json", "--split", "test", "--out", dir + "/real"])
        XCTAssertEqual(imported.status, 0, imported.err)

        var results: [[[Float]]] = []
        for (index, data) in [dir + "/real/manifest.json", dir + "/real", dir + "/real/real-test-00000.h5"].enumerated() {
            let out = dir + "/p\(index).safetensors"
            let result = try runCSM(["prototypes", "--data", data, "--out", out])
            XCTAssertEqual(result.status, 0, result.err)
            results.append(try ClassPrototypes(path: out).prototypes)
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])

        let bad = try runCSM(["prototypes", "--data", dir + "/absent", "--out", dir + "/x.safetensors"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("\(dir)/absent: no such file or directory"), bad.err)
    }
}

import CSMFormats
import CSMImport
import CSMShards
import Foundation
import XCTest

/// The repository's Tests/Fixtures/import folder.
private let importFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/import").path

final class ImportTests: XCTestCase {
    /// An IDX images file of `count` images of rows×cols; pixel i of image n is (7n + i) % 256.
    static func idxImages(count: Int, rows: Int, cols: Int, magic: UInt32 = 0x803) -> [UInt8] {
        var bytes = bigEndian(magic) + bigEndian(UInt32(count)) + bigEndian(UInt32(rows)) + bigEndian(UInt32(cols))
        for n in 0..<count { for i in 0..<(rows * cols) { bytes.append(UInt8((7 * n + i) % 256)) } }
        return bytes
    }

    static func idxLabels(_ labels: [UInt8], magic: UInt32 = 0x801) -> [UInt8] {
        bigEndian(magic) + bigEndian(UInt32(labels.count)) + labels
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (24 - 8 * $0) & 0xff) } }

    func write(_ bytes: [UInt8], _ path: String, gzip: Bool = false) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        guard gzip else { return path }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-f", "-n", path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return path + ".gz"
    }

    func assertImportError(_ body: @autoclosure () throws -> Any, path: String, mentions text: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? FileError else { return XCTFail("not an FileError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.path, path, file: file, line: line)
            XCTAssertTrue(error.description.contains(text), "'\(error)' does not mention '\(text)'", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        }
    }

    func testIDXRoundTripThroughShardsPlainAndGzipped() throws {
        for gzip in [false, true] {
            let dir = try temporaryDirectory(self)
            let labels: [UInt8] = [2, 0, 1, 2, 1]
            let images = try write(Self.idxImages(count: 5, rows: 3, cols: 2), dir + "/img-idx3-ubyte", gzip: gzip)
            let labelsPath = try write(Self.idxLabels(labels), dir + "/lab-idx1-ubyte", gzip: gzip)
            let data = try IDXReader.read(images: images, labels: labelsPath, classNames: ["a", "b", "c"])
            XCTAssertEqual([data.count, data.height, data.width, data.channels], [5, 3, 2, 1])
            XCTAssertEqual(data.images, Array(Self.idxImages(count: 5, rows: 3, cols: 2)[16...]))

            let out = dir + "/shards"
            let manifest = try RealDataImport(split: "test", shardSize: 2, createdBy: "csm test")
                .write(data, to: out, config: .object(["source": .string("idx")]))
            XCTAssertEqual(manifest.shards.map(\.file), ["real-test-00000.h5", "real-test-00001.h5", "real-test-00002.h5"])
            XCTAssertEqual(manifest.shards.map(\.count), [2, 2, 1])
            XCTAssertEqual(try Manifest.read(from: out + "/manifest.json"), manifest)
            XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: out).contains { $0.hasSuffix(".tmp") })

            var pixels: [UInt8] = [], classes: [Int32] = []
            for (index, entry) in manifest.shards.enumerated() {
                let reader = try ShardReader(path: out + "/" + entry.file)
                XCTAssertEqual(reader.metadata.kind, .real)
                XCTAssertEqual(reader.metadata.classNames, ["a", "b", "c"])
                XCTAssertEqual([reader.metadata.shardIndex, reader.metadata.numShards], [index, 3])
                XCTAssertTrue(reader.metadata.sharpness.isNaN)
                XCTAssertEqual(try FileHash.sha256(ofFile: out + "/" + entry.file), entry.sha256)
                let s = try reader.read()
                pixels += s.images
                classes += s.classA
                for row in 0..<s.count {
                    let oneHot = (0..<3).map { Float($0 == Int(s.classA[row]) ? 1 : 0) }
                    XCTAssertEqual(Array(s.labels[(row * 3)..<(row * 3 + 3)]), oneHot)
                }
                XCTAssertEqual(Set(s.classB), [-1])
                XCTAssertEqual(Set(s.lambdaGen), [1])
                XCTAssertTrue(s.lambdaProj.allSatisfy(\.isNaN))
                XCTAssertEqual(Set(s.probA), [1])
                XCTAssertEqual(Set(s.probB), [0])
                XCTAssertEqual(Set(s.consistent), [1])
                XCTAssertEqual(Set(s.group), [-1])
                XCTAssertEqual(Set(s.seed), [-1])
            }
            XCTAssertEqual(pixels, data.images)
            XCTAssertEqual(classes, labels.map { Int32($0) })
        }
    }

    func testMalformedIDXFilesAreRejectedNamingTheFile() throws {
        let dir = try temporaryDirectory(self)
        let good = try write(Self.idxImages(count: 3, rows: 2, cols: 2), dir + "/good-images")
        let labels = try write(Self.idxLabels([0, 1, 0]), dir + "/labels")
        let names = ["x", "y"]

        let wrongMagic = try write(Self.idxImages(count: 3, rows: 2, cols: 2, magic: 0x801), dir + "/magic")
        assertImportError(try IDXReader.read(images: wrongMagic, labels: labels, classNames: names), path: wrongMagic,
                          mentions: "magic number")
        assertImportError(try IDXReader.read(images: good, labels: good, classNames: names), path: good, mentions: "magic number")

        let full = Self.idxImages(count: 3, rows: 2, cols: 2)
        let truncated = try write(Array(full.dropLast(3)), dir + "/truncated")
        assertImportError(try IDXReader.read(images: truncated, labels: labels, classNames: names), path: truncated, mentions: "truncated")
        let header = try write(Array(full.prefix(10)), dir + "/header")
        assertImportError(try IDXReader.read(images: header, labels: labels, classNames: names), path: header, mentions: "truncated")
        let trailing = try write(full + [1, 2], dir + "/trailing")
        assertImportError(try IDXReader.read(images: trailing, labels: labels, classNames: names), path: trailing, mentions: "unexpected bytes")

        let fewer = try write(Self.idxLabels([0, 1]), dir + "/fewer")
        assertImportError(try IDXReader.read(images: good, labels: fewer, classNames: names), path: fewer, mentions: "2 labels")
        let outside = try write(Self.idxLabels([0, 5, 1]), dir + "/outside")
        assertImportError(try IDXReader.read(images: good, labels: outside, classNames: names), path: outside, mentions: "label 5")

        // A gzip stream cut short.
        let gz = try write(full, dir + "/cut", gzip: true)
        let compressed = try Data(contentsOf: URL(fileURLWithPath: gz))
        try compressed.prefix(compressed.count - 10).write(to: URL(fileURLWithPath: gz))
        assertImportError(try IDXReader.read(images: gz, labels: labels, classNames: names), path: gz, mentions: "truncated")

        let missing = dir + "/missing"
        assertImportError(try IDXReader.read(images: missing, labels: labels, classNames: names), path: missing, mentions: "no such file")
    }

    /// IDX header sizes are multiplied with overflow checks before anything is copied: a
    /// header claiming 2³²−1 images of 2³²−1 × 2³²−1 pixels is one line, not a crash.
    func testIDXHeaderSizesAreCheckedWithoutOverflow() {
        let huge = Self.bigEndian(IDXReader.imagesMagic) + Self.bigEndian(.max) + Self.bigEndian(.max) + Self.bigEndian(.max) + [1, 2]
        XCTAssertThrowsError(try IDXReader.parseImages(huge, path: "huge-images")) { error in
            XCTAssertEqual((error as? FileError)?.path, "huge-images")
            XCTAssertTrue("\(error)".contains("too many to hold"), "\(error)")
        }
        let large = Self.bigEndian(IDXReader.imagesMagic) + Self.bigEndian(1 << 20) + Self.bigEndian(1 << 10) + Self.bigEndian(1 << 10)
        XCTAssertThrowsError(try IDXReader.parseImages(large, path: "large-images")) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        let labels = Self.bigEndian(IDXReader.labelsMagic) + Self.bigEndian(.max) + [0, 1]
        XCTAssertThrowsError(try IDXReader.parseLabels(labels, path: "huge-labels")) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        for length in 0..<16 {
            XCTAssertThrowsError(try IDXReader.parseImages(Array(huge.prefix(length)), path: "short")) { error in
                XCTAssertEqual((error as? FileError)?.path, "short")
            }
        }
    }

    func testCIFAR10And100RecordsBecomeHWCImages() throws {
        let dir = try temporaryDirectory(self)
        // Two records; pixel byte at CHW offset i is (i + 11n) % 256.
        func record(_ labels: [UInt8], _ n: Int) -> [UInt8] { labels + (0..<3072).map { UInt8(($0 + 11 * n) % 256) } }
        let ten = try write(record([3], 0) + record([9], 1), dir + "/test_batch.bin")
        let data = try CIFARReader.read(.cifar10, files: [ten], classNames: CIFARReader.cifar10ClassNames)
        XCTAssertEqual(data.labels, [3, 9])
        XCTAssertEqual([data.height, data.width, data.channels], [32, 32, 3])
        for (n, y, x, c) in [(0, 0, 0, 0), (0, 5, 7, 2), (1, 31, 31, 1), (1, 10, 3, 0)] {
            let chw = c * 1024 + y * 32 + x
            XCTAssertEqual(data.images[n * 3072 + (y * 32 + x) * 3 + c], UInt8((chw + 11 * n) % 256))
        }
        let hundred = try write(record([1, 42], 0) + record([19, 99], 1), dir + "/test.bin")
        let fine = try CIFARReader.read(.cifar100, files: [hundred], classNames: (0..<100).map { "c\($0)" })
        XCTAssertEqual(fine.labels, [42, 99])
        XCTAssertEqual(fine.images, data.images)

        let broken = try write(record([3], 0) + [1, 2, 3], dir + "/broken.bin")
        assertImportError(try CIFARReader.read(.cifar10, files: [broken], classNames: CIFARReader.cifar10ClassNames),
                          path: broken, mentions: "records")
        let badLabel = try write(record([10], 0), dir + "/label.bin")
        assertImportError(try CIFARReader.read(.cifar10, files: [badLabel], classNames: CIFARReader.cifar10ClassNames),
                          path: badLabel, mentions: "label 10")
        XCTAssertEqual(CIFARReader.fileNames(.cifar10, split: "train").count, 5)
    }

    func testPNGFolderClassesAreSortedSubfolders() throws {
        let root = importFixtures + "/folder"
        let data = try ImageFolderReader.read(root)
        XCTAssertEqual(data.classNames, ["a_square", "b_circle"])
        XCTAssertEqual(data.labels, [0, 0, 1, 1])
        XCTAssertEqual([data.height, data.width, data.channels], [3, 4, 1])
        let ramp = (0..<12).map { $0 }
        XCTAssertEqual(data.images, (ramp.map { UInt8(100 + $0) } + ramp.map { UInt8(200 + $0) }
                                     + ramp.map { UInt8($0) } + ramp.map { UInt8(3 + $0) }))

        let dir = try temporaryDirectory(self)
        try FileManager.default.createDirectory(atPath: dir + "/only", withIntermediateDirectories: true)
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/only/bad.png"))
        assertImportError(try ImageFolderReader.read(dir), path: dir + "/only/bad.png", mentions: "PNG")
        assertImportError(try ImageFolderReader.read(dir + "/nowhere"), path: dir + "/nowhere", mentions: "not a folder")
    }

    func testDebianFashionMNISTTestSplit() throws {
        let source = "/usr/share/datasets/fashion-mnist"
        let images = source + "/t10k-images-idx3-ubyte.gz", labels = source + "/t10k-labels-idx1-ubyte.gz"
        guard FileManager.default.fileExists(atPath: images), FileManager.default.fileExists(atPath: labels) else {
            throw XCTSkip("Debian's dataset-fashion-mnist is not installed")
        }
        let data = try IDXReader.read(images: images, labels: labels, classNames: (0..<10).map { "c\($0)" })
        XCTAssertEqual([data.count, data.height, data.width, data.channels], [10_000, 28, 28, 1])
        // The test split is balanced: 1000 images per class.
        var counts = [Int](repeating: 0, count: 10)
        for label in data.labels { counts[Int(label)] += 1 }
        XCTAssertEqual(counts, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(data.labels.prefix(5), [9, 2, 1, 1, 6])
    }
}

/// Where `csm import fashion-mnist` finds its files.
final class FashionMNISTFilesTests: XCTestCase {
    func testGzippedFilesArePreferredAndAMissingOneIsNamed() throws {
        let folder = NSTemporaryDirectory() + "csm-fashion-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            FileManager.default.createFile(atPath: folder + "/" + name, contents: Data())
        }
        let test = try FashionMNIST.files(in: folder, split: "test")
        XCTAssertEqual(test.images, folder + "/t10k-images-idx3-ubyte.gz")
        XCTAssertEqual(test.labels, folder + "/t10k-labels-idx1-ubyte")
        XCTAssertThrowsError(try FashionMNIST.files(in: folder, split: "train")) { error in
            XCTAssertEqual("\(error)", folder + "/train-images-idx3-ubyte.gz: no such file (is dataset-fashion-mnist installed? try --source)")
        }
        XCTAssertEqual(FashionMNIST.classNames.count, 10)
    }
}

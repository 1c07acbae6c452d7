import CSMFormats
import CSMShards
import Foundation
import XCTest

/// A fresh, empty temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "csm-shards-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Runs python3 with `script` and `arguments`; returns the exit status and output.
func runPython(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Skips the test unless python3 with h5py is available.
func requireH5py() throws {
    guard let result = try? runPython("import h5py", []), result.status == 0 else {
        throw XCTSkip("python3 with h5py is not installed")
    }
}

final class ShardTests: XCTestCase {
    /// A mixed shard of `count` samples of 5×4×3 images and 4 classes, every value distinct.
    static func samples(count: Int) -> ShardSamples {
        let h = 5, w = 4, c = 3, k = 4
        var state: UInt64 = 12345
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        let images = (0..<(count * h * w * c)).map { _ in UInt8(truncatingIfNeeded: next()) }
        var labels = [Float](repeating: 0, count: count * k)
        var classA: [Int32] = [], classB: [Int32] = [], lambdaGen: [Float] = [], lambdaProj: [Float] = []
        for i in 0..<count {
            let a = Int32(i % k), b = Int32((i + 1) % k)
            let lambda = Float(i % 8) / 7
            classA.append(a)
            classB.append(i % 5 == 0 ? -1 : b)
            lambdaGen.append(lambda)
            lambdaProj.append(i % 7 == 3 ? .nan : lambda * 1.3 - 0.15)
            labels[i * k + Int(a)] = lambda
            labels[i * k + Int(b)] += 1 - lambda
        }
        return ShardSamples(
            height: h, width: w, channels: c, numClasses: k, images: images, labels: labels, classA: classA, classB: classB,
            lambdaGen: lambdaGen, lambdaProj: lambdaProj,
            probA: (0..<count).map { Float($0) / Float(count + 1) }, probB: (0..<count).map { 1 - Float($0) / Float(count + 3) },
            consistent: (0..<count).map { UInt8($0 % 3 == 0 ? 0 : 1) },
            group: (0..<count).map { Int64($0 / 8) + 1 << 40 }, seed: (0..<count).map { -Int64($0) * 1_000_003 + Int64.max / 3 })
    }

    static let metadata = ShardMetadata(
        kind: .mixed, classNames: ["T-shirt/top", "Trouser", "Ankle boot", "Ünïcode ✓"], sharpness: 12.5,
        generator: #"{"model": "fashion-mnist-edm-vp32.safetensors", "sha256": "ab12", "steps": 18}"#,
        annotator: #"{"classifier_sha256": "cd34", "prototypes_sha256": "ef56", "delta": 0.25}"#,
        shardIndex: 2, numShards: 5, createdBy: "csm 0.1.0")

    /// Bitwise equality, so that NaN equals NaN.
    func assertSameBits(_ a: [Float], _ b: [Float], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), label, file: file, line: line)
    }

    func assertSameSamples(_ got: ShardSamples, _ expected: ShardSamples, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual([got.height, got.width, got.channels, got.numClasses],
                       [expected.height, expected.width, expected.channels, expected.numClasses], file: file, line: line)
        XCTAssertEqual(got.images, expected.images, "images", file: file, line: line)
        assertSameBits(got.labels, expected.labels, "labels", file: file, line: line)
        XCTAssertEqual(got.classA, expected.classA, "class_a", file: file, line: line)
        XCTAssertEqual(got.classB, expected.classB, "class_b", file: file, line: line)
        assertSameBits(got.lambdaGen, expected.lambdaGen, "lambda_gen", file: file, line: line)
        assertSameBits(got.lambdaProj, expected.lambdaProj, "lambda_proj", file: file, line: line)
        assertSameBits(got.probA, expected.probA, "prob_a", file: file, line: line)
        assertSameBits(got.probB, expected.probB, "prob_b", file: file, line: line)
        XCTAssertEqual(got.consistent, expected.consistent, "consistent", file: file, line: line)
        XCTAssertEqual(got.group, expected.group, "group", file: file, line: line)
        XCTAssertEqual(got.seed, expected.seed, "seed", file: file, line: line)
    }

    /// `body` must throw a `FileError` for `path` whose description mentions every string in `mentions`.
    func assertShardError(_ path: String, mentions: [String], file: StaticString = #filePath, line: UInt = #line,
                          _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error (expected one mentioning \(mentions))", file: file, line: line)
        } catch let error as FileError {
            XCTAssertEqual(error.path, path, file: file, line: line)
            for text in mentions {
                XCTAssertTrue(error.description.contains(text), "'\(error.description)' should mention '\(text)'", file: file, line: line)
            }
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("untyped error \(error)", file: file, line: line)
        }
    }

    // MARK: Round trip

    func testRoundTripOfEveryDatasetAndAttribute() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/shard-00002.h5"
        let samples = Self.samples(count: 37)
        try ShardWriter(chunkBytes: 200).write(samples, metadata: Self.metadata, to: path)

        let reader = try ShardReader(path: path)
        XCTAssertEqual(reader.metadata, Self.metadata)
        XCTAssertEqual(reader.count, 37)
        XCTAssertEqual([reader.height, reader.width, reader.channels, reader.numClasses], [5, 4, 3, 4])
        assertSameSamples(try reader.read(), samples)
        try reader.verify()

        // Row ranges, across chunk boundaries.
        let rows = 9..<30
        XCTAssertEqual(try reader.images(rows: rows), Array(samples.images[(9 * 60)..<(30 * 60)]))
        assertSameBits(try reader.labels(rows: rows), Array(samples.labels[(9 * 4)..<(30 * 4)]), "labels rows")
        XCTAssertEqual(try reader.seed(rows: rows), Array(samples.seed[rows]))
        assertSameBits(try reader.lambdaProj(rows: rows), Array(samples.lambdaProj[rows]), "lambda_proj rows")
        let part = try reader.read(rows: 36..<37)
        XCTAssertEqual(part.count, 1)
        XCTAssertEqual(part.classB, [samples.classB[36]])
        XCTAssertEqual(try reader.group(rows: 5..<5), [])
        assertShardError(path, mentions: ["'images'", "outside 0..<37"]) { _ = try reader.images(rows: 30..<38) }
        XCTAssertGreaterThan(try reader.storageRanges(of: .images).count, 1)
    }

    func testRealShardAndEmptyShard() throws {
        let directory = try temporaryDirectory(self)
        var metadata = Self.metadata
        metadata.kind = .real
        metadata.sharpness = .nan
        metadata.generator = "null"
        metadata.shardIndex = 0
        metadata.numShards = 1
        let path = directory + "/real.h5"
        let one = Self.samples(count: 1)
        try ShardWriter().write(one, metadata: metadata, to: path)
        let reader = try ShardReader(path: path)
        XCTAssertEqual(reader.metadata.kind, .real)
        XCTAssertTrue(reader.metadata.sharpness.isNaN)
        XCTAssertEqual(reader.metadata.generator, "null")
        assertSameSamples(try reader.read(), one)

        let emptyPath = directory + "/empty.h5"
        let empty = Self.samples(count: 0)
        try ShardWriter().write(empty, metadata: Self.metadata, to: emptyPath)
        let emptyReader = try ShardReader(path: emptyPath)
        XCTAssertEqual(emptyReader.count, 0)
        XCTAssertEqual([emptyReader.height, emptyReader.width, emptyReader.channels], [5, 4, 3])
        assertSameSamples(try emptyReader.read(), empty)
        try emptyReader.verify()
    }

    // MARK: Determinism

    func testIdenticalInputGivesIdenticalBytes() throws {
        let directory = try temporaryDirectory(self)
        let samples = Self.samples(count: 300)
        try ShardWriter().write(samples, metadata: Self.metadata, to: directory + "/a.h5")
        // HDF5 timestamps have one-second resolution: make sure a clock tick lies between the writes.
        Thread.sleep(forTimeInterval: 1.1)
        try ShardWriter().write(samples, metadata: Self.metadata, to: directory + "/b.h5")
        let a = try XCTUnwrap(FileManager.default.contents(atPath: directory + "/a.h5"))
        let b = try XCTUnwrap(FileManager.default.contents(atPath: directory + "/b.h5"))
        XCTAssertEqual(a, b)
        XCTAssertEqual(try FileHash.sha256(ofFile: directory + "/a.h5"), try FileHash.sha256(ofFile: directory + "/b.h5"))

        // And different input gives different bytes.
        var changed = samples
        changed.seed[17] += 1
        try ShardWriter().write(changed, metadata: Self.metadata, to: directory + "/c.h5")
        XCTAssertNotEqual(FileManager.default.contents(atPath: directory + "/c.h5"), a)
    }

    // MARK: Damage

    func testFlippedByteInImagesIsCaught() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/damaged.h5"
        let samples = Self.samples(count: 64)
        try ShardWriter(chunkBytes: 600).write(samples, metadata: Self.metadata, to: path)
        let chunks = try ShardReader(path: path).storageRanges(of: .images)
        XCTAssertGreaterThan(chunks.count, 2)
        let target = chunks[1]
        var bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
        bytes[(target.lowerBound + target.upperBound) / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let reader = try ShardReader(path: path)
        assertShardError(path, mentions: ["'images'", "cannot read"]) { _ = try reader.images() }
        assertShardError(path, mentions: ["'images'"]) { _ = try reader.read() }
        assertShardError(path, mentions: ["'images'"]) { try reader.verify() }
        // Rows in undamaged chunks and the other datasets still read.
        XCTAssertEqual(try reader.images(rows: 0..<10), Array(samples.images[0..<600]))
        XCTAssertEqual(try reader.seed(), samples.seed)
    }

    func testFlippedByteReportsChecksum() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/damaged.h5"
        try ShardWriter().write(Self.samples(count: 10), metadata: Self.metadata, to: path)
        let chunk = try XCTUnwrap(try ShardReader(path: path).storageRanges(of: .labels).first)
        var bytes = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: path)))
        bytes[chunk.lowerBound + 3] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try ShardReader(path: path)
        assertShardError(path, mentions: ["'labels'", "Fletcher32"]) { _ = try reader.labels() }
    }

    func testTruncatedShardIsRejected() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/truncated.h5"
        try ShardWriter().write(Self.samples(count: 200), metadata: Self.metadata, to: path)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        for length in [bytes.count - 1, bytes.count / 2, 100, 0] {
            try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
            assertShardError(path, mentions: []) { _ = try ShardReader(path: path) }
        }
    }

    func testMissingFileAndWrongFileType() throws {
        let directory = try temporaryDirectory(self)
        assertShardError(directory + "/absent.h5", mentions: ["no such file"]) { _ = try ShardReader(path: directory + "/absent.h5") }
        assertShardError(directory, mentions: ["directory"]) { _ = try ShardReader(path: directory) }
        let text = directory + "/notes.h5"
        try Data("not an HDF5 file at all".utf8).write(to: URL(fileURLWithPath: text))
        assertShardError(text, mentions: ["not an HDF5 file"]) { _ = try ShardReader(path: text) }
    }

    // MARK: Temporary name, then rename

    func testWritesUnderTemporaryNameThenRenames() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/shard-00000.h5"
        let temporary = ShardWriter.temporaryPath(for: path)
        XCTAssertEqual(temporary, directory + "/.shard-00000.h5.tmp")

        // A stale temporary file from a crashed run is replaced, and removed by the rename.
        try Data("half a shard".utf8).write(to: URL(fileURLWithPath: temporary))
        try ShardWriter().write(Self.samples(count: 20), metadata: Self.metadata, to: path)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["shard-00000.h5"])
        let good = try XCTUnwrap(FileManager.default.contents(atPath: path))

        // A failed write leaves the finished file untouched and no temporary file behind.
        var bad = Self.samples(count: 20)
        bad.probA.removeLast()
        assertShardError(path, mentions: ["'prob_a'", "holds 19 values"]) {
            try ShardWriter().write(bad, metadata: Self.metadata, to: path)
        }
        var badMetadata = Self.metadata
        badMetadata.annotator = "{not json"
        assertShardError(path, mentions: ["'annotator'", "JSON"]) {
            try ShardWriter().write(Self.samples(count: 20), metadata: badMetadata, to: path)
        }
        assertShardError(path, mentions: ["'labels'", "class_names has 2"]) {
            var twoClasses = Self.metadata
            twoClasses.classNames = ["a", "b"]
            try ShardWriter().write(Self.samples(count: 20), metadata: twoClasses, to: path)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), good)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary))

        // An unwritable location fails cleanly.
        let nowhere = directory + "/no/such/dir/shard.h5"
        assertShardError(nowhere, mentions: ["cannot create"]) {
            try ShardWriter().write(Self.samples(count: 2), metadata: Self.metadata, to: nowhere)
        }
    }

    // MARK: Plain h5py

    func testH5pyReadsTheShard() throws {
        try requireH5py()
        let directory = try temporaryDirectory(self)
        let path = directory + "/shard.h5"
        try ShardWriter().write(Self.samples(count: 23), metadata: Self.metadata, to: path)
        let script = """
        import json, sys, h5py, numpy as np
        f = h5py.File(sys.argv[1], "r")
        expected = {"images": ("uint8", (23, 5, 4, 3)), "labels": ("float32", (23, 4)),
                    "class_a": ("int32", (23,)), "class_b": ("int32", (23,)),
                    "lambda_gen": ("float32", (23,)), "lambda_proj": ("float32", (23,)),
                    "prob_a": ("float32", (23,)), "prob_b": ("float32", (23,)),
                    "consistent": ("uint8", (23,)), "group": ("int64", (23,)), "seed": ("int64", (23,))}
        assert sorted(f.keys()) == sorted(expected), sorted(f.keys())
        for name, (dtype, shape) in expected.items():
            d = f[name]
            assert d.dtype == np.dtype(dtype), (name, d.dtype)
            assert d.shape == shape, (name, d.shape)
            assert d.fletcher32 and d.shuffle and d.compression == "gzip", name
        a = f.attrs
        assert a["schema"] == "csm-shard/1", a["schema"]
        assert a["kind"] == "mixed"
        assert int(a["num_classes"]) == 4
        assert json.loads(a["class_names"])[3] == "Ünïcode ✓"
        assert float(a["sharpness"]) == 12.5
        assert json.loads(a["generator"])["steps"] == 18
        assert json.loads(a["annotator"])["delta"] == 0.25
        assert int(a["shard_index"]) == 2 and int(a["num_shards"]) == 5
        assert a["created_by"] == "csm 0.1.0"
        assert int(f["seed"][22]) == int(sys.argv[2]), f["seed"][22]
        assert int(f["images"][3, 2, 1, 0]) == int(sys.argv[3])
        print("ok")
        """
        let samples = Self.samples(count: 23)
        let result = try runPython(script, [path, String(samples.seed[22]), String(samples.images[((3 * 5 + 2) * 4 + 1) * 3])])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("ok"), result.output)
    }

    func testSchemaViolationsWrittenByH5py() throws {
        try requireH5py()
        let directory = try temporaryDirectory(self)
        let original = directory + "/shard.h5"
        try ShardWriter().write(Self.samples(count: 12), metadata: Self.metadata, to: original)
        let cases: [(edit: String, mentions: [String])] = [
            ("del f['labels']; f['labels'] = np.zeros((12, 4), np.float64)", ["'labels'", "float64", "expected float32"]),
            ("del f['seed']", ["'seed'", "missing dataset"]),
            ("del f['class_a']; f['class_a'] = np.zeros((11,), np.int32)", ["'class_a'", "[11]", "expected [12]"]),
            ("del f['labels']; f['labels'] = np.zeros((12, 5), np.float32)", ["'labels'", "expected [12, 4]"]),
            ("f.attrs['schema'] = 'csm-shard/2'", ["'schema'", "csm-shard/2"]),
            ("del f.attrs['schema']", ["not a csm-shard/1 file"]),
            ("f.attrs['kind'] = 'synthetic'", ["'kind'", "synthetic"]),
            ("f.attrs['class_names'] = '[\"a\"]'", ["'class_names'", "num_classes is 4"]),
            ("del f.attrs['created_by']", ["'created_by'", "missing attribute"]),
        ]
        for (index, item) in cases.enumerated() {
            let path = directory + "/edited-\(index).h5"
            try FileManager.default.copyItem(atPath: original, toPath: path)
            let script = "import sys, h5py, numpy as np\nf = h5py.File(sys.argv[1], 'r+')\n\(item.edit)\nf.close()\n"
            let result = try runPython(script, [path])
            XCTAssertEqual(result.status, 0, result.output)
            assertShardError(path, mentions: item.mentions) { _ = try ShardReader(path: path) }
        }
        // Fixed-length string attributes, as other tools may write them, are read too.
        let fixed = directory + "/fixed.h5"
        try FileManager.default.copyItem(atPath: original, toPath: fixed)
        let result = try runPython("import sys, h5py, numpy as np\nf = h5py.File(sys.argv[1], 'r+')\nf.attrs['created_by'] = np.bytes_(b'other tool 2')\nf.close()\n", [fixed])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(try ShardReader(path: fixed).metadata.createdBy, "other tool 2")
    }
}

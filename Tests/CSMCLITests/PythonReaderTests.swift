import CSMFormats
import CSMLoader
import Foundation
import XCTest

/// The Swift loader and the Python reader (the csm_shards package, `pip install ./python`) see the same samples.
final class PythonReaderTests: XCTestCase {
    func testSwiftLoaderAndPythonReaderAgree() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import h5py, numpy"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("python3 with h5py and numpy is not installed") }

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let generated = try runCSM(["generate", "--out", dir, "--prototypes", GenerateCommandTests.prototypes, "--pairs", "7:9,3:4",
                                    "--groups-per-pair", "2", "--steps", "2", "--shard-size", "16"])
        XCTAssertEqual(generated.status, 0, generated.err)
        let indices = [0, 5, 17, 31]

        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-m", "csm_shards", "dump", dir,
                            "--indices", indices.map(String.init).joined(separator: ","), "--images", "list"]
        let pipe = Pipe(), errors = Pipe()
        python.standardOutput = pipe
        python.standardError = errors
        try python.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        XCTAssertEqual(python.terminationStatus, 0, "python3 -m csm_shards (make python-package installs it): \(message)")
        let dump = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let samples = try XCTUnwrap(dump["samples"] as? [[String: Any]])

        let set = try ShardSet(path: dir)
        XCTAssertEqual(dump["count"] as? Int, set.count)
        for (sample, index) in zip(samples, indices) {
            XCTAssertEqual(sample["index"] as? Int, index)
            let image = (sample["image"] as? [NSNumber])?.map { UInt8($0.intValue) }
            XCTAssertEqual(image, Array(try set.image(index)), "image \(index)")
            let label = (sample["label"] as? [NSNumber])?.map { $0.floatValue }
            XCTAssertEqual(label, set.label(index), "label \(index)")
            XCTAssertEqual((sample["group"] as? NSNumber)?.int64Value, set.columns.group[index])
        }
    }
}

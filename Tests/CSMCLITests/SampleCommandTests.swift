import CSMFormats
import CSMModels
import Foundation
import XCTest

/// Runs the built `csm` binary (it sits beside the test bundle) and returns its exit
/// status, stdout and stderr.
func csmExecutable() -> URL {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let executable = bundle.appendingPathComponent("csm")
    return FileManager.default.fileExists(atPath: executable.path) ? executable : Bundle.main.bundleURL.appendingPathComponent("csm")
}

/// Runs the built csm with `arguments` in `directory` (the package root by default);
/// `environment` adds to (or, with "", clears) variables.
func runCSM(_ arguments: [String], environment: [String: String] = [:],
            directory: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = csmExecutable()
    process.arguments = arguments
    if !environment.isEmpty {
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value.isEmpty ? nil : value }
        process.environment = merged
    }
    process.currentDirectoryURL = directory.map { URL(fileURLWithPath: $0) } ?? packageRoot()
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

func packageRoot() -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "csm-cli-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

final class SampleCommandTests: XCTestCase {
    let fixture = packageRoot().appendingPathComponent("Tests/Fixtures/edm/fashion-mnist-edm-vp32.sample.safetensors").path

    func testOneStepFromFilesIsTheDenoiser() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/d.safetensors"
        let result = try runCSM(["sample", "--latents", fixture, "--labels", fixture, "--steps", "1", "--sigma-max", "2",
                                 "--out", out, "--png", dir + "/png"])
        XCTAssertEqual(result.status, 0, result.err)
        let got = try SafeTensorsFile(path: out).floats("images")
        let expected = try SafeTensorsFile(path: fixture).floats("denoised_sigma2")
        XCTAssertEqual(got.count, expected.count)
        XCTAssertLessThan(zip(got, expected).map { abs($0 - $1) }.max()!, 1e-3)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/png").filter { $0.hasSuffix(".png") }.count, 16)
    }

    func testMalformedModelIsOneLineAndNonZeroExit() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = packageRoot().appendingPathComponent("Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors").path
        let bad = dir + "/truncated.safetensors"
        let bytes = FileManager.default.contents(atPath: model)!
        _ = FileManager.default.createFile(atPath: bad, contents: bytes.prefix(bytes.count / 2))
        let result = try runCSM(["sample", "--model", bad, "--seeds", "0-1", "--class", "3", "--grid", dir + "/g.png"])
        XCTAssertNotEqual(result.status, 0)
        let lines = result.err.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.err)
        XCTAssertTrue(result.err.contains(bad) && result.err.contains("past the end"), result.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/g.png"))
    }

    func testBadArgumentsAreRejected() throws {
        for arguments in [["sample", "--seeds", "5-2", "--class", "1", "--grid", "/tmp/x.png"],
                          ["sample", "--seeds", "0", "--class", "Shoe", "--grid", "/tmp/x.png"],
                          ["sample", "--seeds", "0", "--mix", "1:2:1.5", "--grid", "/tmp/x.png"],
                          ["sample", "--seeds", "0", "--class", "1"],
                          ["sample", "--seeds", "0", "--class", "1", "--solver", "dpm2m", "--churn", "1", "--grid", "/tmp/x.png"],
                          ["sample", "--seeds", "0", "--class", "1", "--solver", "rk4", "--grid", "/tmp/x.png"],
                          ["sample", "--seeds", "0", "--class", "1", "--precision", "fp16", "--grid", "/tmp/x.png"],
                          ["sample", "--latents", "/nonexistent.safetensors", "--labels", "/nonexistent.safetensors", "--out", "/tmp/x"]] {
            let result = try runCSM(arguments)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(result.err.hasPrefix("Error:"), result.err)
        }
    }

    /// `--solver dpm2m` without `--steps` takes 12 steps, one evaluation each (the JSON summary).
    func testDPMSolverDefaultsToTwelveEvaluations() throws {
        let result = try runCSM(["sample", "--seeds", "0-1", "--class", "1", "--solver", "dpm2m", "--json"])
        XCTAssertEqual(result.status, 0, result.err)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any], result.out)
        XCTAssertEqual(summary["evaluations_per_image"] as? Int, 12, result.out)
    }

    func testTrajectoryGrid() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try runCSM(["sample", "--seeds", "0-1", "--trajectory", "Sneaker:Ankle boot", "--lambdas", "3", "--steps", "4",
                                 "--grid", dir + "/t.png", "--out", dir + "/t.safetensors"])
        XCTAssertEqual(result.status, 0, result.err)
        let labels = try SafeTensorsFile(path: dir + "/t.safetensors").floats("class_labels")
        XCTAssertEqual(labels.count, 6 * 10)
        XCTAssertEqual(labels[7], 0)            // seed 0, λ = 0: all ankle boot
        XCTAssertEqual(labels[9], 1)
        XCTAssertEqual(labels[17], 0.5)          // λ = 0.5
        XCTAssertEqual(labels[27], 1)            // λ = 1: all sneaker
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/t.png"))
    }
}

import CSMFormats
import CSMPipeline
import CSMShards
import Foundation
import XCTest

/// `GenerationRun`, the set-up and shard loop behind `csm generate`, on the shipped models.
final class GenerationRunTests: XCTestCase {
    private static let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Datasets/fashion-mnist").path
    private let files = GenerationRun.Files(model: datasets + "/fashion-mnist-edm-vp32.safetensors",
                                            classifier: datasets + "/fashion-mnist-resnet20.safetensors",
                                            prototypes: datasets + "/fashion-mnist-resnet20.prototypes.safetensors")

    private func settings() -> GenerationRun.Settings {
        var settings = GenerationRun.Settings()
        settings.pairs = "7:9,Sandal:Bag"
        settings.groupsPerPair = 2
        settings.lambdas = 3
        settings.sampler.steps = 3
        settings.shardSize = 6
        return settings
    }

    func testShardsManifestAndProgress() throws {
        let directory = NSTemporaryDirectory() + "csm-generation-run-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try GenerationRun(files: files, settings: settings(), createdBy: "test")
        XCTAssertNil(run.pairWeights)
        XCTAssertEqual(run.plan.pairs.count, 2)
        XCTAssertEqual(run.plan.sampleCount, 12)
        XCTAssertEqual(run.plan.shardCount, 2)
        XCTAssertEqual(run.images(in: [0, 1]), 12)

        var manifest = try run.generator.openManifest(in: directory)
        var reported: [Int] = []
        let summary = try run.generate([1, 0], into: directory, manifest: &manifest) { reported.append($0) }
        XCTAssertEqual(summary.samples, 12)
        XCTAssertEqual(reported.last, 12)
        XCTAssertEqual(reported, reported.sorted(), "progress never goes back")
        XCTAssertEqual(Set(manifest.shards.map(\.file)), ["mixed-00000.h5", "mixed-00001.h5"])
        XCTAssertEqual(run.generator.pending([0, 1], manifest: manifest, directory: directory), [])
        XCTAssertEqual(manifest.shards.map(\.count).reduce(0, +), 12)
        for entry in manifest.shards {
            XCTAssertEqual(try FileHash.sha256(ofFile: directory + "/" + entry.file), entry.sha256)
        }
    }

    func testPrototypesOfAnotherClassifierAreRefused() throws {
        // The same network with one more metadata entry: another file, so another SHA-256.
        let copy = NSTemporaryDirectory() + "csm-classifier-copy-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let original = try SafeTensorsFile(path: files.classifier)
        var metadata = original.metadata
        metadata["note"] = "a copy"
        try SafeTensorsWriter.write(try original.names.map { .init(name: $0, shape: try original.shape(of: $0), values: try original.floats($0)) },
                                    metadata: metadata, to: copy)
        var other = files
        other.classifier = copy
        XCTAssertThrowsError(try GenerationRun(files: other, settings: settings(), createdBy: "test")) { error in
            XCTAssertEqual("\(error)", "\(files.prototypes): the prototypes were made with another classifier (SHA-256 differs); rerun `csm prototypes`")
        }
        var noGroups = settings()
        noGroups.groupsPerPair = 0
        XCTAssertThrowsError(try GenerationRun(files: files, settings: noGroups, createdBy: "test")) { error in
            XCTAssertEqual("\(error)", "--groups-per-pair must be at least 1")
        }
    }
}

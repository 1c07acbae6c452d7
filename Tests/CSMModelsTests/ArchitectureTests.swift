import CSMFormats
import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// Networks of every family load from their metadata alone, whatever the sizes: each
/// configuration here gets a file of random weights written from the architecture's own
/// tensor list, is loaded back, and denoises a batch to finite values of the right shape.
final class ArchitectureTests: XCTestCase {
    func roundTrip(_ edm: String, dtype: SafeTensorsDType = .f32, file: StaticString = #filePath, line: UInt = #line) throws {
        let configuration = try EDMConfiguration(json: edm, path: "test")
        let shapes = try EDMModel.parameterShapes(configuration)
        var state: UInt64 = 7
        let items = shapes.map { entry -> SafeTensorsWriter.Item in
            let values = (0..<entry.shape.reduce(1, *)).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23) * 0.2
            }
            return .init(name: entry.name, shape: entry.shape, values: values, dtype: dtype)
        }
        let path = NSTemporaryDirectory() + "csm-arch-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensorsWriter.write(items, metadata: ["format": "edm-diffusion/1", "edm": edm], to: path)
        let model = try EDMModel(path: path)
        let r = model.resolution, c = model.channels, k = model.labelDimension
        let x = FeatureMap(count: 3, height: r, width: r, channels: c, values: (0..<(3 * r * r * c)).map { Float($0 % 17) / 8 - 1 })
        var labels = [Float](repeating: 0, count: 3 * k)
        if k > 1 { labels[0] = 1; labels[k + 1] = 0.3; labels[k] = 0.7 }
        let y = model.denoise(x, sigma: [0.5, 2, 10], classLabels: labels)
        XCTAssertEqual([y.count, y.height, y.width, y.channels], [3, r, r, c], file: file, line: line)
        XCTAssertTrue(y.values.allSatisfy(\.isFinite), file: file, line: line)
    }

    func testSongUNetVariants() throws {
        try roundTrip(#"{"class_name": "VPPrecond", "init_kwargs": {"img_resolution": 16, "img_channels": 2, "label_dim": 4, "model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [8]}}"#)
        try roundTrip(#"{"class_name": "VEPrecond", "init_kwargs": {"img_resolution": 24, "img_channels": 3, "label_dim": 0, "model_channels": 8, "channel_mult": [2, 1, 3], "num_blocks": 2, "attn_resolutions": [24, 6], "embedding_type": "fourier", "channel_mult_noise": 2, "encoder_type": "skip", "decoder_type": "skip", "resample_filter": [1, 3, 3, 1]}}"#)
        try roundTrip(#"{"class_name": "EDMPrecond", "init_kwargs": {"img_resolution": 8, "img_channels": 1, "label_dim": 3, "model_type": "SongUNet", "model_channels": 16, "channel_mult": [1, 1, 2], "num_blocks": 3, "attn_resolutions": [], "encoder_type": "residual", "channel_mult_emb": 2}}"#)
    }

    func testDhariwalUNetVariants() throws {
        try roundTrip(#"{"class_name": "EDMPrecond", "init_kwargs": {"img_resolution": 16, "img_channels": 3, "label_dim": 5, "model_channels": 64, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [8]}}"#, dtype: .f16)
        try roundTrip(#"{"class_name": "VPPrecond", "init_kwargs": {"img_resolution": 12, "img_channels": 1, "label_dim": 0, "model_type": "DhariwalUNet", "model_channels": 32, "channel_mult": [1, 1], "num_blocks": 2, "attn_resolutions": [12]}}"#, dtype: .bf16)
    }

    func testConfigurationErrors() {
        XCTAssertThrowsError(try EDMConfiguration(json: #"{"class_name": "iDDPMPrecond", "init_kwargs": {}}"#, path: "m"))
        XCTAssertThrowsError(try EDMConfiguration(json: #"{"class_name": "VPPrecond", "init_kwargs": {"img_channels": 1}}"#, path: "m")) { error in
            XCTAssertTrue("\(error)".contains("img_resolution"))
        }
        XCTAssertThrowsError(try EDMConfiguration(json: #"{"class_name": "VPPrecond", "init_kwargs": {"img_resolution": 28, "img_channels": 1, "bogus": 1}}"#, path: "m")) { error in
            XCTAssertTrue("\(error)".contains("bogus"))
        }
        XCTAssertThrowsError(try EDMConfiguration(json: #"{"class_name": "VPPrecond", "init_kwargs": {"img_resolution": 30, "img_channels": 1, "channel_mult": [1, 2, 2]}}"#, path: "m"))
    }

    func testSafeTensorsRoundTripInAllFloatTypes() throws {
        let values: [Float] = [0, 1, -2.5, 0.333, 65504, 1e-3]
        for dtype in [SafeTensorsDType.f32, .f16, .bf16] {
            let bytes = try SafeTensorsWriter.encode([.init(name: "t", shape: [2, 3], values: values, dtype: dtype)], metadata: ["k": "v\"q"])
            let file = try SafeTensorsFile(bytes: bytes, path: "mem")
            XCTAssertEqual(file.metadata["k"], "v\"q")
            XCTAssertEqual(try file.shape(of: "t"), [2, 3])
            let back = try file.floats("t")
            for (a, b) in zip(values, back) { XCTAssertEqual(a, b, accuracy: max(abs(a), 1) * (dtype == .bf16 ? 8e-3 : 1e-3)) }
        }
    }
}

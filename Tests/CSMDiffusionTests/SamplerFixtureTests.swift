import CSMDiffusion
import CSMModels
import CSMNumerics
import Foundation
import XCTest

func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name).path
}

func defaultModelPath() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Datasets/fashion-mnist/fashion-mnist-edm-vp32.safetensors").path
}

/// The default Fashion-MNIST model through EDM's Heun sampler, against the reference run.
final class SamplerFixtureTests: XCTestCase {
    static let reference = try! SafeTensorsFile(path: fixture("edm/fashion-mnist-edm-vp32.sample.safetensors"))
    static let model = try! EDMModel(path: defaultModelPath())

    func latents() throws -> FeatureMap {
        let r = Self.reference
        let shape = try r.shape(of: "latents")
        return FeatureMap(nchw: try r.floats("latents"), count: shape[0], channels: shape[1], height: shape[2], width: shape[3])
    }

    func testEighteenStepHeunMatchesReference() throws {
        let sampler = EDMSampler(model: Self.model, settings: SamplerSettings())
        let images = sampler.sample(latents: try latents(), classLabels: try Self.reference.floats("class_labels")).nchw
        let expected = try Self.reference.floats("images")
        var worst: Float = 0
        for i in 0..<expected.count { worst = max(worst, abs(images[i] - expected[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-3)
    }

    func testOneStepIsDenoiserAtSigmaMax() throws {
        var settings = SamplerSettings()
        settings.steps = 1
        settings.sigmaMax = 2
        let sampler = EDMSampler(model: Self.model, settings: settings)
        XCTAssertEqual(sampler.timeSteps, [2, 0])
        let got = sampler.sample(latents: try latents(), classLabels: try Self.reference.floats("class_labels")).nchw
        let expected = try Self.reference.floats("denoised_sigma2")
        let per = 28 * 28
        for i in 0..<(expected.count / per) {
            var worst: Float = 0, largest: Float = 0
            for j in 0..<per {
                worst = max(worst, abs(got[i * per + j] - expected[i * per + j]))
                largest = max(largest, abs(expected[i * per + j]))
            }
            XCTAssertLessThanOrEqual(worst, 1e-4 * (1 + largest), "sample \(i)")
        }
    }

    func testTimeStepsFollowEDMSchedule() {
        let sampler = EDMSampler(model: Self.model, settings: SamplerSettings())
        let t = sampler.timeSteps
        XCTAssertEqual(t.count, 19)
        XCTAssertEqual(t[0], 80, accuracy: 1e-9)      // VP supports up to ≈ 152
        XCTAssertEqual(t[17], 0.002, accuracy: 1e-12)
        XCTAssertEqual(t[18], 0)
        for i in 1..<18 { XCTAssertLessThan(t[i], t[i - 1]) }
    }
}

import CSMDiffusion
import CSMFormats
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
        print("18-step Heun: max |error| \(worst)")
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

/// Randomness depends on seeds only, never on batching.
final class SamplerDeterminismTests: XCTestCase {
    func testChurnNoiseIsIndependentOfBatching() throws {
        var settings = SamplerSettings()
        settings.steps = 3
        settings.churn = 10
        let sampler = EDMSampler(model: SamplerFixtureTests.model, settings: settings)
        let seeds: [UInt64] = [5, 9, 11]
        let latents = FeatureMap(nchw: seeds.flatMap { GaussianStream(seed: $0).values(784) }, count: 3, channels: 1, height: 28, width: 28)
        var labels = [Float](repeating: 0, count: 30)
        labels[7] = 1; labels[17] = 0.5; labels[19] = 0.5; labels[21] = 1
        let together = sampler.sample(latents: latents, classLabels: labels, churnSeeds: seeds)
        let alone = sampler.sample(latents: latents.slice(1..<2), classLabels: Array(labels[10..<20]), churnSeeds: [9])
        let part = Array(together.values[784..<1568])
        XCTAssertLessThan(zip(part, alone.values).map { abs($0 - $1) }.max()!, 1e-4)
        // Churn changes the result; a different seed changes it differently.
        settings.churn = 0
        let deterministic = EDMSampler(model: SamplerFixtureTests.model, settings: settings)
            .sample(latents: latents.slice(1..<2), classLabels: Array(labels[10..<20]))
        XCTAssertGreaterThan(zip(deterministic.values, alone.values).map { abs($0 - $1) }.max()!, 1e-2)
        let otherSeed = sampler.sample(latents: latents.slice(1..<2), classLabels: Array(labels[10..<20]), churnSeeds: [10])
        XCTAssertGreaterThan(zip(otherSeed.values, alone.values).map { abs($0 - $1) }.max()!, 1e-2)
    }

    func testGaussianStreamIsStandardNormal() {
        let values = GaussianStream(seed: 123).values(100_000)
        let mean = values.reduce(0, +) / Float(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        XCTAssertEqual(Array(GaussianStream(seed: 123).values(10)), Array(values.prefix(10)))
        XCTAssertNotEqual(GaussianStream(seed: 124).values(10), Array(values.prefix(10)))
    }
}

import CSMDiffusion
import CSMFormats
import CSMModels
import CSMNumerics
import CSMRandom
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
        let images = try sampler.sample(latents: try latents(), classLabels: try Self.reference.floats("class_labels")).nchw
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
        let got = try sampler.sample(latents: try latents(), classLabels: try Self.reference.floats("class_labels")).nchw
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

    /// DPM-Solver++(2M) at 12 steps against tools/fixtures/make_dpm2m_fixture.py (PyTorch, the same
    /// latents and labels through tools/reference/edm_torch.py).
    func testDPMSolver2MMatchesPyTorch() throws {
        let reference = try SafeTensorsFile(path: fixture("edm/fashion-mnist-edm-vp32.dpm2m.safetensors"))
        var settings = SamplerSettings()
        settings.solver = .dpm2m
        settings.steps = try reference.integers("steps")[0]
        XCTAssertEqual(settings.evaluationsPerImage, 12)
        var evaluations = 0
        let sampler = EDMSampler(model: Self.model, settings: settings)
        let images = try sampler.sample(latents: try latents(), classLabels: try reference.floats("class_labels"),
                                    progress: { done, _ in evaluations = done }).nchw
        XCTAssertEqual(evaluations, 12)
        let expected = try reference.floats("images")
        var worst: Float = 0
        for i in 0..<expected.count { worst = max(worst, abs(images[i] - expected[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-3)
        print("12-step DPM-Solver++(2M): max |error| \(worst)")
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
        let together = try sampler.sample(latents: latents, classLabels: labels, churnSeeds: seeds)
        let alone = try sampler.sample(latents: latents.slice(1..<2), classLabels: Array(labels[10..<20]), churnSeeds: [9])
        let part = Array(together.values[784..<1568])
        XCTAssertLessThan(zip(part, alone.values).map { abs($0 - $1) }.max()!, 1e-4)
        // Churn changes the result; a different seed changes it differently.
        settings.churn = 0
        let deterministic = try EDMSampler(model: SamplerFixtureTests.model, settings: settings)
            .sample(latents: latents.slice(1..<2), classLabels: Array(labels[10..<20]))
        XCTAssertGreaterThan(zip(deterministic.values, alone.values).map { abs($0 - $1) }.max()!, 1e-2)
        let otherSeed = try sampler.sample(latents: latents.slice(1..<2), classLabels: Array(labels[10..<20]), churnSeeds: [10])
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

/// The solvers on a denoiser whose ODE solution is known: data N(0, s²) per coordinate,
/// D(x; σ) = x·s²/(s² + σ²), so x(σ) = x(σ_max)·√(s² + σ²)/√(s² + σ_max²).
final class SolverConvergenceTests: XCTestCase {
    static let s = 0.5

    /// |sampled − exact| for a unit latent after `steps` noise levels (the last step to σ = 0
    /// is D at σ_min for every solver, so the exact answer is D(x(σ_min); σ_min)).
    func error(_ solver: SamplerSettings.Solver, steps: Int) throws -> Double {
        var settings = SamplerSettings()
        settings.solver = solver
        settings.steps = steps
        let sampler = EDMSampler(model: SamplerFixtureTests.model, settings: settings)
        let s2 = Self.s * Self.s
        let denoise = { (x: [Double], sigma: Double) in x.map { $0 * s2 / (s2 + sigma * sigma) } }
        var evaluations = 0
        let got = sampler.solve([1], images: 1) { x, sigma in
            evaluations += 1
            return denoise(x, sigma)
        }
        XCTAssertEqual(evaluations, settings.evaluationsPerImage, "\(solver) evaluations")
        let t = sampler.timeSteps
        let sigmaMin = t[t.count - 2]
        let atSigmaMin = t[0] * ((s2 + sigmaMin * sigmaMin) / (s2 + t[0] * t[0])).squareRoot()
        return abs(got[0] - denoise([atSigmaMin], sigmaMin)[0])
    }

    func testDPMSolver2MIsSecondOrder() throws {
        for steps in [12, 24] {
            let coarse = try error(.dpm2m, steps: steps), fine = try error(.dpm2m, steps: 2 * steps)
            XCTAssertLessThan(fine, coarse / 3, "DPM-Solver++(2M) \(steps) → \(2 * steps) steps: \(coarse) → \(fine)")
            let eulerCoarse = try error(.euler, steps: steps), eulerFine = try error(.euler, steps: 2 * steps)
            XCTAssertGreaterThan(eulerFine, eulerCoarse / 3, "Euler is first order: \(eulerCoarse) → \(eulerFine)")
            XCTAssertLessThan(fine, eulerFine / 3, "\(2 * steps) steps: DPM-Solver++(2M) \(fine), Euler \(eulerFine)")
        }
    }

    func testHeunIsSecondOrder() throws {
        let coarse = try error(.heun, steps: 24), fine = try error(.heun, steps: 48)
        XCTAssertLessThan(fine, coarse / 3, "Heun 24 → 48 steps: \(coarse) → \(fine)")
    }
}

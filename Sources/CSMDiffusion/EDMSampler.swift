import CSMModels
import CSMNumerics
import CSMRandom
import Foundation

/// Settings of EDM's sampler (Karras et al. 2022, Algorithm 2, with optional churn).
public struct SamplerSettings: Sendable, Equatable, Codable {
    /// The ODE solver: EDM's 2nd-order Heun (the default, two evaluations per step),
    /// 1st-order Euler, or DPM-Solver++(2M) (Lu et al. 2022), 2nd-order multistep with one
    /// evaluation per step.
    public enum Solver: String, Sendable, Codable, CaseIterable { case heun, euler, dpm2m }

    /// Number of noise levels N of the schedule (N − 1 steps, then a last one to σ = 0).
    public var steps: Int = 18
    /// Smallest noise level σ_min (clipped to the network's range).
    public var sigmaMin: Double = 0.002
    /// Largest noise level σ_max, where sampling starts (clipped to the network's range).
    public var sigmaMax: Double = 80
    /// ρ of EDM's time-step discretisation (σ_max^(1/ρ) … σ_min^(1/ρ) spaced evenly).
    public var rho: Double = 7
    /// The solver.
    public var solver: Solver = .heun
    /// S_churn: the total amount of stochastic churn (0: deterministic). Heun and Euler
    /// only: DPM-Solver++(2M) is deterministic and ignores it.
    public var churn: Double = 0
    /// S_tmin: churn applies only at σ ≥ this.
    public var churnSigmaMin: Double = 0
    /// S_tmax: churn applies only at σ ≤ this.
    public var churnSigmaMax: Double = .infinity
    /// S_noise: scale of the churn noise.
    public var churnNoise: Double = 1

    /// EDM's defaults: 18 Heun steps from σ = 80 to 0.002, ρ = 7, no churn.
    public init() {}

    /// Network evaluations per image: Heun pays two per step but the last, the others one.
    public var evaluationsPerImage: Int { solver == .heun ? max(1, 2 * steps - 1) : steps }
}

/// An image whose sampling state or network output stopped being finite (extreme latents
/// or weights overflow float32): sampling stops rather than return garbage.
public struct NonFiniteSample: Error, CustomStringConvertible, Sendable {
    /// The image's position in the batch sampled.
    public let image: Int
    /// The network evaluation (1-based) whose input or output was not finite.
    public let evaluation: Int
    /// Evaluations per image in all.
    public let evaluations: Int
    /// The noise level of that evaluation.
    public let sigma: Double

    public var description: String {
        String(format: "the sample turned non-finite at network evaluation %d of %d (σ = %.4g)", evaluation, evaluations, sigma)
    }
}

/// EDM's deterministic Heun / Euler sampler with optional stochastic churn. The state is
/// kept in float64 as EDM does; the network runs in float32.
public struct EDMSampler: Sendable {
    /// The denoiser sampled.
    public let model: EDMModel
    /// The schedule, solver and churn used.
    public let settings: SamplerSettings

    /// A sampler of `model` with `settings`.
    public init(model: EDMModel, settings: SamplerSettings) {
        self.model = model
        self.settings = settings
    }

    /// The noise levels t_0 > … > t_{N−1} > t_N = 0, σ range clipped to the network's.
    /// One step means a single Euler step from σ_max to 0.
    public var timeSteps: [Double] {
        let lo = max(settings.sigmaMin, model.sigmaMin), hi = min(settings.sigmaMax, model.sigmaMax)
        let n = settings.steps
        guard n > 1 else { return [hi, 0] }
        let a = pow(hi, 1 / settings.rho), b = pow(lo, 1 / settings.rho)
        var steps: [Double] = []
        for i in 0..<n {
            let fraction = Double(i) / Double(n - 1)
            steps.append(pow(a + fraction * (b - a), settings.rho))
        }
        return steps + [0]
    }

    /// Samples images from `latents` (unit-variance noise, [n, H, W, C]) and class vectors
    /// (n·K values). `churnSeeds` (one per image) seed the churn noise when churn > 0.
    /// `progress` is called after each network evaluation with (done, total).
    /// Returns unclipped images in the network's range (≈ [−1, 1]). Throws `NonFiniteSample`
    /// for the first image whose state or network output is NaN or ±Inf in float32.
    public func sample(latents: FeatureMap, classLabels: [Float], churnSeeds: [UInt64]? = nil,
                       progress: ((Int, Int) -> Void)? = nil) throws -> FeatureMap {
        let n = latents.count
        let per = latents.height * latents.width * latents.channels
        let evaluations = settings.evaluationsPerImage
        var done = 0
        func checkFinite(_ values: [Float], sigma: Double) throws {
            if let index = values.firstIndex(where: { !$0.isFinite }) {
                throw NonFiniteSample(image: index / max(1, per), evaluation: max(1, done), evaluations: evaluations, sigma: sigma)
            }
        }
        let x = try solve(latents.values.map(Double.init), images: n, churnSeeds: churnSeeds) { state, sigma in
            let input = FeatureMap(count: n, height: latents.height, width: latents.width, channels: latents.channels,
                                   values: state.map { Float($0) })
            done += 1
            try checkFinite(input.values, sigma: sigma)
            let d = model.denoise(input, sigma: [Float](repeating: Float(sigma), count: n), classLabels: classLabels)
            try checkFinite(d.values, sigma: sigma)
            progress?(done, evaluations)
            return d.values.map { Double($0) }
        }
        let images = x.map { Float($0) }
        try checkFinite(images, sigma: 0)
        return FeatureMap(count: n, height: latents.height, width: latents.width, channels: latents.channels, values: images)
    }

    /// The probability-flow ODE solved from `latents` (unit-variance noise of `images`
    /// images, flattened) with any denoiser D(x; σ) (`denoise(state, σ)`, same layout):
    /// x starts at latents·t_0 and follows dx/dσ = (x − D(x; σ))/σ down the schedule.
    /// `sample` is this with the network; tests give it denoisers whose solution is known.
    public func solve(_ latents: [Double], images: Int, churnSeeds: [UInt64]? = nil,
                      denoise: ([Double], Double) throws -> [Double]) rethrows -> [Double] {
        let t = timeSteps
        let total = latents.count, per = images > 0 ? total / images : 0
        var x = latents.map { $0 * t[0] }
        if settings.solver == .dpm2m { return try dpmSolver2M(x, t, denoise) }
        for i in 0..<(t.count - 1) {
            let tCur = t[i], tNext = t[i + 1]
            var tHat = tCur
            var xHat = x
            if settings.churn > 0, tCur >= settings.churnSigmaMin, tCur <= settings.churnSigmaMax {
                let gamma = min(settings.churn / Double(settings.steps), 2.0.squareRoot() - 1)
                tHat = tCur + gamma * tCur
                let scale = (tHat * tHat - tCur * tCur).squareRoot() * settings.churnNoise
                for j in 0..<images {
                    let seed = churnSeeds?[j] ?? UInt64(j)
                    let eps = GaussianStream(seed: seed, stream: UInt64(i + 1)).values(per)
                    for e in 0..<per { xHat[j * per + e] += scale * Double(eps[e]) }
                }
            }
            let denoised = try denoise(xHat, tHat)
            var dCur = [Double](repeating: 0, count: total)
            for e in 0..<total {
                dCur[e] = (xHat[e] - denoised[e]) / tHat
                x[e] = xHat[e] + (tNext - tHat) * dCur[e]
            }
            if settings.solver == .heun && i < t.count - 2 {
                let denoisedNext = try denoise(x, tNext)
                for e in 0..<total {
                    let dPrime = (x[e] - denoisedNext[e]) / tNext
                    x[e] = xHat[e] + (tNext - tHat) * (0.5 * dCur[e] + 0.5 * dPrime)
                }
            }
        }
        return x
    }

    /// DPM-Solver++(2M) in EDM's parameterisation (x = y + σ·n, so λ = −log σ): with
    /// h = λ_{i+1} − λ_i, each step is exact for a denoised value constant in λ,
    ///   x_{i+1} = (σ_{i+1}/σ_i)·x_i + (1 − σ_{i+1}/σ_i)·D̂,
    /// where D̂ is D_i on the first step and on the last (to σ = 0, which returns D̂), and
    /// otherwise the linear extrapolation D̂ = (1 + 1/(2r))·D_i − 1/(2r)·D_{i−1},
    /// r = h_{i−1}/h_i, from the previous step's evaluation: one evaluation per step.
    private func dpmSolver2M(_ start: [Double], _ t: [Double], _ denoise: ([Double], Double) throws -> [Double]) rethrows -> [Double] {
        var x = start
        var previous: [Double]?
        for i in 0..<(t.count - 1) {
            let sigma = t[i], sigmaNext = t[i + 1]
            let denoised = try denoise(x, sigma)
            var estimate = denoised
            if let previous, sigmaNext > 0 {
                let h = log(sigma / sigmaNext), hLast = log(t[i - 1] / sigma)
                let r = hLast / h
                let a = 1 + 1 / (2 * r), b = 1 / (2 * r)
                for e in estimate.indices { estimate[e] = a * denoised[e] - b * previous[e] }
            }
            let ratio = sigmaNext / sigma
            for e in x.indices { x[e] = ratio * x[e] + (1 - ratio) * estimate[e] }
            previous = denoised
        }
        return x
    }
}

import CSMModels
import CSMNumerics
import Foundation

/// Settings of EDM's sampler (Karras et al. 2022, Algorithm 2, with optional churn).
public struct SamplerSettings: Sendable, Equatable, Codable {
    /// The ODE solver: EDM's 2nd-order Heun (the default) or 1st-order Euler.
    public enum Solver: String, Sendable, Codable, CaseIterable { case heun, euler }

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
    /// S_churn: the total amount of stochastic churn (0: deterministic).
    public var churn: Double = 0
    /// S_tmin: churn applies only at σ ≥ this.
    public var churnSigmaMin: Double = 0
    /// S_tmax: churn applies only at σ ≤ this.
    public var churnSigmaMax: Double = .infinity
    /// S_noise: scale of the churn noise.
    public var churnNoise: Double = 1

    /// EDM's defaults: 18 Heun steps from σ = 80 to 0.002, ρ = 7, no churn.
    public init() {}

    /// Network evaluations per image: Heun pays two per step but the last.
    public var evaluationsPerImage: Int { solver == .heun ? max(1, 2 * steps - 1) : steps }
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
    /// Returns unclipped images in the network's range (≈ [−1, 1]).
    public func sample(latents: FeatureMap, classLabels: [Float], churnSeeds: [UInt64]? = nil,
                       progress: ((Int, Int) -> Void)? = nil) -> FeatureMap {
        let t = timeSteps
        let n = latents.count, per = latents.pixels * latents.channels
        let total = n * per
        var x = latents.values.map { Double($0) * t[0] }
        let evaluations = settings.solver == .heun ? 2 * (t.count - 1) - 1 : t.count - 1
        var done = 0
        func evaluate(_ state: [Double], _ sigma: Double) -> [Double] {
            let input = FeatureMap(count: n, height: latents.height, width: latents.width, channels: latents.channels,
                                   values: state.map { Float($0) })
            let d = model.denoise(input, sigma: [Float](repeating: Float(sigma), count: n), classLabels: classLabels)
            done += 1
            progress?(done, evaluations)
            return d.values.map { Double($0) }
        }
        for i in 0..<(t.count - 1) {
            let tCur = t[i], tNext = t[i + 1]
            var tHat = tCur
            var xHat = x
            if settings.churn > 0, tCur >= settings.churnSigmaMin, tCur <= settings.churnSigmaMax {
                let gamma = min(settings.churn / Double(settings.steps), 2.0.squareRoot() - 1)
                tHat = tCur + gamma * tCur
                let scale = (tHat * tHat - tCur * tCur).squareRoot() * settings.churnNoise
                for j in 0..<n {
                    let seed = churnSeeds?[j] ?? UInt64(j)
                    let eps = GaussianStream(seed: seed, stream: UInt64(i + 1)).values(per)
                    for e in 0..<per { xHat[j * per + e] += scale * Double(eps[e]) }
                }
            }
            let denoised = evaluate(xHat, tHat)
            var dCur = [Double](repeating: 0, count: total)
            for e in 0..<total {
                dCur[e] = (xHat[e] - denoised[e]) / tHat
                x[e] = xHat[e] + (tNext - tHat) * dCur[e]
            }
            if settings.solver == .heun && i < t.count - 2 {
                let denoisedNext = evaluate(x, tNext)
                for e in 0..<total {
                    let dPrime = (x[e] - denoisedNext[e]) / tNext
                    x[e] = xHat[e] + (tNext - tHat) * (0.5 * dCur[e] + 0.5 * dPrime)
                }
            }
        }
        return FeatureMap(count: n, height: latents.height, width: latents.width, channels: latents.channels,
                          values: x.map { Float($0) })
    }
}

import ArgumentParser
import CSMDiffusion
import CSMFormats
import CSMNumerics

/// The EDM sampler flags, shared by the commands that sample.
struct SamplerOptions: ParsableArguments {
    @Option(help: "Sampler steps: noise levels of the schedule (default 18 for heun and euler, EDM's; 12 for dpm2m). 1 = a single Euler step from σ_max to 0.")
    var steps: Int?
    @Option(name: .customLong("sigma-min"), help: "Smallest noise level (clipped to the network's range).")
    var sigmaMin: Double = 0.002
    @Option(name: .customLong("sigma-max"), help: "Largest noise level (clipped to the network's range).")
    var sigmaMax: Double = 80
    @Option(help: "Time-step exponent ρ.")
    var rho: Double = 7
    @Option(help: ArgumentHelp("ODE solver: heun (2nd order, two evaluations per step; EDM default), euler, or dpm2m (DPM-Solver++(2M): 2nd order multistep, one evaluation per step).",
                               valueName: "heun|euler|dpm2m"))
    var solver: SamplerSettings.Solver = .heun
    @Option(name: .customLong("churn"), help: "Stochastic churn S_churn (0 = deterministic).")
    var churn: Double = 0
    @Option(name: .customLong("churn-sigma-min"), help: "S_min: churn only at σ ≥ this.")
    var churnSigmaMin: Double = 0
    @Option(name: .customLong("churn-sigma-max"), help: "S_max: churn only at σ ≤ this.")
    var churnSigmaMax: Double = .infinity
    @Option(name: .customLong("churn-noise"), help: "S_noise: scale of the churn noise.")
    var churnNoise: Double = 1
    @Option(help: ArgumentHelp("Arithmetic of the network's convolutions: fp32 (exact to the reference fixtures) or bf16 (weights and products in bfloat16 with fp32 sums, on AMX / AVX512-BF16 where the CPU has them; faster on large networks, slightly different images).",
                               valueName: "fp32|bf16"))
    var precision: Precision = .fp32

    func validate() throws {
        guard resolvedSteps >= 1 && resolvedSteps <= 10_000 else { throw ValidationError("--steps must be between 1 and 10000") }
        guard sigmaMin > 0, sigmaMax > sigmaMin else { throw ValidationError("need 0 < --sigma-min < --sigma-max") }
        guard rho > 0 else { throw ValidationError("--rho must be positive") }
        guard churn >= 0, churnNoise >= 0 else { throw ValidationError("--churn and --churn-noise must be ≥ 0") }
        guard churn == 0 || solver != .dpm2m else { throw ValidationError("--churn needs --solver heun or euler (dpm2m is deterministic)") }
    }

    /// `--steps`, or the solver's default: EDM's 18 for Heun and Euler; 12 for DPM-Solver++(2M),
    /// which on the default model places the λ = 0 and λ = 1 samples in their classes at least
    /// as often as Heun at 18 steps, with a third of its evaluations (docs/guide/sampling.md).
    var resolvedSteps: Int { steps ?? (solver == .dpm2m ? 12 : 18) }

    /// Tells the user when `--precision bf16` will run on oneDNN's slow reference kernels.
    func warnAboutPrecision() {
        if precision == .bf16 && !BFloat16Filters.isNative {
            printError("warning: --precision bf16: this CPU has neither AMX-BF16 nor AVX512-BF16; the bf16 convolutions run on oneDNN's slow reference kernels (fp32 is faster here)")
        }
    }

    var settings: SamplerSettings {
        var s = SamplerSettings()
        s.steps = resolvedSteps
        s.sigmaMin = sigmaMin
        s.sigmaMax = sigmaMax
        s.rho = rho
        s.solver = solver
        s.churn = churn
        s.churnSigmaMin = churnSigmaMin
        s.churnSigmaMax = churnSigmaMax
        s.churnNoise = churnNoise
        return s
    }
}

extension SamplerSettings.Solver: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// Parses seed lists like EDM's generate.py: "0-63", "1,5,9-12".
func parseSeeds(_ text: String) throws -> [UInt64] {
    var seeds: [UInt64] = []
    for part in text.split(separator: ",") {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
        if bounds.count == 1, let value = UInt64(bounds[0]) {
            seeds.append(value)
        } else if bounds.count == 2, let lo = UInt64(bounds[0]), let hi = UInt64(bounds[1]), lo <= hi, hi - lo < 10_000_000 {
            seeds += Array(lo...hi)
        } else {
            throw ValidationError("--seeds '\(text)': expected numbers and ranges like 0-63 or 1,5,9-12")
        }
    }
    guard !seeds.isEmpty else { throw ValidationError("--seeds is empty") }
    return seeds
}

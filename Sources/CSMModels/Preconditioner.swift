import CSMNumerics
import Foundation

/// EDM's preconditioning of a denoiser network F (Karras et al. 2022, Table 1):
/// D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)). One type per preconditioner
/// of NVlabs/edm `training/networks.py` (`VPPrecond`, `VEPrecond`, `EDMPrecond`), each
/// built from that class's constructor arguments.
public protocol Preconditioner: Sendable {
    /// EDM's class name, as the model file's `edm` metadata gives it.
    static var className: String { get }
    /// The network's default `model_type` (EDM's constructor default).
    static var defaultModelType: String { get }
    /// The smallest noise level the network supports.
    var sigmaMin: Double { get }
    /// The largest noise level the network supports.
    var sigmaMax: Double { get }
    /// (c_skip, c_out, c_in, c_noise) at noise level σ.
    func coefficients(sigma: Double) -> (skip: Double, out: Double, input: Double, noise: Double)
}

extension Preconditioner {
    /// D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) for a batch (one σ per image), with
    /// `network` computing F from the scaled images and the noise labels c_noise.
    func denoise(_ x: FeatureMap, sigma: [Float], network: (_ scaled: FeatureMap, _ noiseLabels: [Float]) -> FeatureMap) -> FeatureMap {
        let n = x.count, per = x.pixels * x.channels
        var scaled = x
        var noise = [Float](repeating: 0, count: n), skip = noise, out = noise
        for i in 0..<n {
            let co = coefficients(sigma: Double(sigma[i]))
            (skip[i], out[i], noise[i]) = (Float(co.skip), Float(co.out), Float(co.noise))
            let cin = Float(co.input)
            for j in 0..<per { scaled.values[i * per + j] *= cin }
        }
        var f = network(scaled, noise)
        for i in 0..<n {
            for j in 0..<per { f.values[i * per + j] = skip[i] * x.values[i * per + j] + out[i] * f.values[i * per + j] }
        }
        return f
    }
}

/// EDM's `VPPrecond`: the variance-preserving (DDPM++) parameterisation.
public struct VPPreconditioner: Preconditioner, Equatable {
    public static let className = "VPPrecond"
    public static let defaultModelType = "SongUNet"
    /// β_d, the extent of the noise schedule.
    public var betaD = 19.9
    /// β_min, its initial slope.
    public var betaMin = 0.1
    /// M, the number of discretisation steps the network was trained with.
    public var timesteps = 1000.0
    /// ε_t, the smallest time t.
    public var epsilonT = 1e-5

    public init(betaD: Double = 19.9, betaMin: Double = 0.1, timesteps: Double = 1000, epsilonT: Double = 1e-5) {
        self.betaD = betaD
        self.betaMin = betaMin
        self.timesteps = timesteps
        self.epsilonT = epsilonT
    }

    /// Noise level at time t: σ(t) = sqrt(exp(β_d t²/2 + β_min t) − 1).
    public func sigma(_ t: Double) -> Double {
        (exp(0.5 * betaD * t * t + betaMin * t) - 1).squareRoot()
    }

    /// Inverse of `sigma(_:)`.
    public func sigmaInverse(_ sigma: Double) -> Double {
        ((betaMin * betaMin + 2 * betaD * log(1 + sigma * sigma)).squareRoot() - betaMin) / betaD
    }

    public var sigmaMin: Double { sigma(epsilonT) }
    public var sigmaMax: Double { sigma(1) }

    public func coefficients(sigma: Double) -> (skip: Double, out: Double, input: Double, noise: Double) {
        (1, -sigma, 1 / (sigma * sigma + 1).squareRoot(), (timesteps - 1) * sigmaInverse(sigma))
    }
}

/// EDM's `VEPrecond`: the variance-exploding (NCSN++) parameterisation.
public struct VEPreconditioner: Preconditioner, Equatable {
    public static let className = "VEPrecond"
    public static let defaultModelType = "SongUNet"
    public var sigmaMin = 0.02
    public var sigmaMax = 100.0

    public init(sigmaMin: Double = 0.02, sigmaMax: Double = 100) {
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
    }

    public func coefficients(sigma: Double) -> (skip: Double, out: Double, input: Double, noise: Double) {
        (1, sigma, 1, log(0.5 * sigma))
    }
}

/// EDM's own `EDMPrecond`.
public struct EDMPreconditioner: Preconditioner, Equatable {
    public static let className = "EDMPrecond"
    public static let defaultModelType = "DhariwalUNet"
    public var sigmaMin = 0.0
    public var sigmaMax = Double.infinity
    /// σ_data, the expected standard deviation of the training data.
    public var sigmaData = 0.5

    public init(sigmaMin: Double = 0, sigmaMax: Double = .infinity, sigmaData: Double = 0.5) {
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
        self.sigmaData = sigmaData
    }

    public func coefficients(sigma: Double) -> (skip: Double, out: Double, input: Double, noise: Double) {
        let denominator = sigma * sigma + sigmaData * sigmaData
        return (sigmaData * sigmaData / denominator, sigma * sigmaData / denominator.squareRoot(), 1 / denominator.squareRoot(),
                log(sigma) / 4)
    }
}

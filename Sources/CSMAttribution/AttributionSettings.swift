import CSMModels
import Foundation

/// How a per-training-sample weight w_i is derived.
public enum AttributionWeighting: String, Sendable, Codable, CaseIterable {
    /// w_i from the denoising error of D on x_i (see `DASFeaturizer`).
    case error
    /// w_i = 1.
    case none
}

/// What fixes a DAS feature: the noise levels, the noise, the projection and the weighting.
/// Two feature sets can be compared only when their settings are equal.
public struct AttributionSettings: Sendable, Equatable, Codable {
    /// The noise levels σ_1 … σ_T.
    public var sigmas: [Double]
    /// Seed of the noise ε_t added to every image (see `AttributionNoise`).
    public var noiseSeed: UInt64
    /// k, the projected dimension; 0 keeps the exact gradients (k = |θ|).
    public var projectionDimension: Int
    /// Seed of the Gaussian projection P.
    public var projectionSeed: UInt64
    /// The per-training-sample weight.
    public var weighting: AttributionWeighting

    public init(sigmas: [Double], noiseSeed: UInt64, projectionDimension: Int, projectionSeed: UInt64, weighting: AttributionWeighting) {
        self.sigmas = sigmas
        self.noiseSeed = noiseSeed
        self.projectionDimension = projectionDimension
        self.projectionSeed = projectionSeed
        self.weighting = weighting
    }

    /// T noise levels spread like the sampler's default schedule (EDM, Karras et al. 2022,
    /// eq. 5): σ_max^(1/ρ) … σ_min^(1/ρ) evenly spaced, raised to ρ = 7, with σ_max = 80 and
    /// σ_min = 0.002 clipped to the network's range; largest first. T = 1 gives the
    /// geometric middle of the range.
    public static func noiseLevels(_ count: Int, sigmaMin: Double = 0.002, sigmaMax: Double = 80, rho: Double = 7) -> [Double] {
        precondition(count >= 1, "noiseLevels: need at least one level")
        guard count > 1 else { return [(sigmaMin * sigmaMax).squareRoot()] }
        let a = pow(sigmaMax, 1 / rho), b = pow(sigmaMin, 1 / rho)
        return (0..<count).map { i in pow(a + Double(i) / Double(count - 1) * (b - a), rho) }
    }

    /// `noiseLevels(count)` within the range `network` supports.
    public static func noiseLevels(_ count: Int, for network: TrainableUNet) -> [Double] {
        let p = network.configuration.preconditioner
        return noiseLevels(count, sigmaMin: max(0.002, p.sigmaMin), sigmaMax: min(80, p.sigmaMax))
    }
}

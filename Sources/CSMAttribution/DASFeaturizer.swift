import CSMModels
import CSMNumerics
import Foundation

/// DAS features of images under one network and one `AttributionSettings`:
///
/// - g_t = ∇_θ mean(D_θ(x₀ + σ_t ε_t; σ_t, c)) at each level t (`TrainableUNet.meanDenoiserGradient`);
/// - φ = P · (1/T) Σ_t g_t / ‖g_t‖₂, P the `GaussianProjection` (no P when the projection
///   dimension is 0: φ is then the averaged unit gradient itself);
/// - the weight w = √((1/T) Σ_t e_t) with the normalised denoising error
///   e_t = mean((D(x₀ + σ_t ε_t; σ_t, c) − x₀)²) / (σ_t² σ_d² / (σ_t² + σ_d²)), σ_d = 0.5.
///   The denominator is the error of the best linear denoiser of data with standard deviation
///   σ_d (and 1/λ(σ) of EDM's loss weighting), so every level counts on the scale of the
///   network's training loss and w ≈ 1 for a denoiser no better than that; it depends on
///   this image alone, so sharded runs agree. With `.none`, w = 1.
public struct DASFeaturizer: Sendable {
    /// The network whose gradients are taken.
    public let network: TrainableUNet
    /// Noise levels, noise, projection and weighting.
    public let settings: AttributionSettings
    /// P, or nil for exact gradients.
    public let projection: GaussianProjection?

    /// σ_d of the weight's normalisation (EDM's default data standard deviation).
    public static let dataSigma = 0.5

    public init(network: TrainableUNet, settings: AttributionSettings) {
        precondition(!settings.sigmas.isEmpty && settings.projectionDimension >= 0, "DASFeaturizer: invalid settings")
        self.network = network
        self.settings = settings
        projection = settings.projectionDimension == 0 ? nil
            : GaussianProjection(dimension: settings.projectionDimension, inputDimension: network.parameterCount, seed: settings.projectionSeed)
    }

    /// k: φ's length (|θ| without projection).
    public var featureDimension: Int { projection?.dimension ?? network.parameterCount }

    /// Values per image (H·W·C).
    public var imageSize: Int { network.configuration.resolution * network.configuration.resolution * network.configuration.channels }

    /// (1/T) Σ_t g_t/‖g_t‖ and w for one image x₀ (H·W·C values in the network's range) with
    /// class vector `classLabels` and noise `noise[t]` (H·W·C values per level).
    public func averagedGradient(image: [Float], classLabels: [Float], noise: [[Float]]) -> (gradient: [Float], weight: Float) {
        let c = network.configuration
        precondition(image.count == imageSize && noise.count == settings.sigmas.count, "DASFeaturizer: image or noise does not match")
        var sum = [Float](repeating: 0, count: network.parameterCount)
        var error = 0.0
        for (t, sigma) in settings.sigmas.enumerated() {
            let s = Float(sigma)
            let noisy = FeatureMap(count: 1, height: c.resolution, width: c.resolution, channels: c.channels,
                                   values: zip(image, noise[t]).map { $0 + s * $1 })
            let (g, denoised) = network.meanDenoiserGradientAndOutput(noisy, sigma: s, classLabels: classLabels)
            Self.addUnitVector(g, to: &sum)
            if settings.weighting == .error {
                let d = denoised.values
                let mse = zip(d, image).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(image.count)
                let sd2 = Self.dataSigma * Self.dataSigma
                error += mse / (sigma * sigma * sd2 / (sigma * sigma + sd2))
            }
        }
        let t = Double(settings.sigmas.count)
        let weight = settings.weighting == .error ? Float((error / t).squareRoot()) : 1
        return (sum.map { $0 / Float(t) }, weight)
    }

    /// sum += g/‖g‖₂ (nothing for a zero gradient); the norm in Double.
    static func addUnitVector(_ g: [Float], to sum: inout [Float]) {
        g.withUnsafeBufferPointer { gb in
            sum.withUnsafeMutableBufferPointer { sb in
                // ‖g‖² in Double, eight running sums so that the loop vectorises.
                var lanes = SIMD8<Double>()
                var j = 0
                while j + 8 <= gb.count {
                    let v = SIMD8<Double>(UnsafeRawPointer(gb.baseAddress! + j).loadUnaligned(as: SIMD8<Float>.self))
                    lanes += v * v
                    j += 8
                }
                var squares = lanes.sum()
                while j < gb.count {
                    squares += Double(gb[j]) * Double(gb[j])
                    j += 1
                }
                guard squares > 0 else { return }
                let scale = Float(1 / squares.squareRoot())
                for j in 0..<gb.count { sb[j] += gb[j] * scale }
            }
        }
    }

    /// φ (count × k) and w for `count` images (count·H·W·C values) with their class vectors
    /// (count·label_dim values; empty for an unconditional network) and the noise of each:
    /// `noise(i, t)` gives image i's ε at level t. Images run in parallel; `imageDone` is
    /// called (from any thread) as each image's gradients are finished.
    public func features(images: [Float], classLabels: [Float], count: Int, noise: (Int, Int) -> [Float],
                         imageDone: (@Sendable () -> Void)? = nil) -> (features: [Float], weights: [Float]) {
        let size = imageSize, labels = network.configuration.labelDimension
        precondition(images.count == count * size && (labels == 0 || classLabels.count == count * labels),
                     "DASFeaturizer: \(count) images do not match the inputs")
        let d = network.parameterCount, levels = settings.sigmas.count
        let noises = (0..<count).map { i in (0..<levels).map { noise(i, $0) } }
        var gradients = [Float](repeating: 0, count: count * d)
        var weights = [Float](repeating: 1, count: count)
        Profiler.measure("das: gradients") {
        gradients.withUnsafeMutableBufferPointer { rows in
            weights.withUnsafeMutableBufferPointer { w in
                let (rows, w) = (rows, w)
                Parallel.forEach(count) { i in
                    let label = labels == 0 ? [] : Array(classLabels[(i * labels)..<((i + 1) * labels)])
                    let result = averagedGradient(image: Array(images[(i * size)..<((i + 1) * size)]), classLabels: label, noise: noises[i])
                    for j in 0..<d { rows[i * d + j] = result.gradient[j] }
                    w[i] = result.weight
                    imageDone?()
                }
            }
        }
        }
        guard let projection else { return (gradients, weights) }
        return (Profiler.measure("das: projection") { projection.project(gradients, count: count) }, weights)
    }
}

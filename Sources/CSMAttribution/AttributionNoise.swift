import CSMDiffusion
import CSMRandom

/// The noise ε_t added to an image at level t: standard normal values, a pure function
/// of (seed, role, index in its set, level), so features never depend on batching,
/// sharding or restarts. Training and query images draw from separate streams: a
/// training image queried again gets fresh noise, and the features compare the images,
/// not the noise.
public struct AttributionNoise: Sendable {
    /// Which set an image belongs to.
    public enum Role: UInt64, Sendable {
        case training = 0, query = 1
    }

    /// The noise seed (`--noise-seed`).
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
    }

    /// ε for image `index` of the `role` set at level `level`: `count` values in the
    /// image's H·W·C order.
    public func noise(_ role: Role, index: Int, level: Int, count: Int) -> [Float] {
        let imageSeed = deriveSeed(deriveSeed(seed, role.rawValue), UInt64(index))
        return GaussianStream(seed: imageSeed, stream: UInt64(level)).values(count)
    }
}

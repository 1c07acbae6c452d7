import CSMRandom
import Foundation

// Seeded inputs the test targets share.

/// The tests' seeded generator: csm's SplitMix64, so every test sees the same "random"
/// inputs.
public typealias SeededGenerator = SplitMix64

extension SplitMix64 {
    /// The generator whose state starts at `seed`.
    public init(seed: UInt64) { self.init(state: seed) }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}

/// Logits and labels of a synthetic classifier: K classes, logits = signal·onehot(true
/// class) + noise, scaled by `sharpness` (above 1: over-confident).
public func syntheticLogits(
    samples: Int, classes: Int, signal: Double = 2, sharpness: Double = 1, seed: UInt64
) -> (logits: [Double], labels: [Int]) {
    var rng = SeededGenerator(seed: seed)
    var logits = [Double](repeating: 0, count: samples * classes)
    var labels = [Int](repeating: 0, count: samples)
    for i in 0..<samples {
        let label = Int.random(in: 0..<classes, using: &rng)
        labels[i] = label
        for k in 0..<classes {
            logits[i * classes + k] = sharpness * ((k == label ? signal : 0) + rng.normal())
        }
    }
    return (logits, labels)
}

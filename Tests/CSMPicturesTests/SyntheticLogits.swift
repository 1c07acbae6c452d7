import Foundation

/// A small seeded generator (SplitMix64), so every test sees the same "random" inputs.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A standard normal sample (Box–Muller).
    mutating func normal() -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}

/// Logits and labels of a synthetic classifier: K classes, logits = signal·onehot(true
/// class) + noise, scaled by `sharpness` (above 1: over-confident).
func syntheticLogits(
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

import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014; the generator Java's SplittableRandom and
/// `numpy.random.SeedSequence`'s mixing build on): a 64-bit state advanced by the golden-ratio
/// increment and passed through `mix`. csm's one implementation of it: the loader's draws
/// (`LoaderRandom`), the bootstrap, the initial weights of trainable networks, the pictures'
/// jitter and `deriveSeed` all use it. Streams are specified in
/// docs/formats/loader-random-streams.md.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The golden-ratio increment 2⁶⁴/φ.
    public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    @usableFromInline var state: UInt64

    /// A generator whose first output is `mix(state + increment)`.
    @inlinable public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    @inlinable public mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.mix(state)
    }

    /// Uniform in [0, 1) with 53 bits.
    @inlinable public mutating func uniform() -> Double { Self.unit(next()) }

    /// A standard normal number by Box–Muller (cosine branch) from two uniforms.
    public mutating func normal() -> Double {
        let u = 1 - uniform(), v = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }

    /// SplitMix64's finaliser (Stafford's Mix13): a bijection of 64-bit words whose output
    /// bits each depend on every input bit.
    @inlinable public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The top 53 bits of `bits` as a number in [0, 1).
    @inlinable public static func unit(_ bits: UInt64) -> Double { Double(bits >> 11) / Double(1 << 53) }
}

/// Independent 64-bit seeds from (seed, index) pairs: SplitMix64's output number index + 1
/// from state `seed`.
public func deriveSeed(_ seed: UInt64, _ index: UInt64) -> UInt64 {
    SplitMix64.mix(seed &+ SplitMix64.increment &* (index &+ 1))
}

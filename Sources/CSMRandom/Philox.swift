/// Philox-4×32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
/// a counter-based generator. Output block i of key k is a pure function of (k, i), so a
/// sample's noise never depends on batching, sharding or restarts.
public struct Philox4x32: Sendable {
    /// The 64-bit key, as two 32-bit words.
    public let key: (UInt32, UInt32)

    /// A generator keyed by `seed` (low word first).
    public init(seed: UInt64) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// The 4 words of block `counter` (a 128-bit counter given as two 64-bit halves).
    public func block(_ counterLow: UInt64, _ counterHigh: UInt64 = 0) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counterLow), c1 = UInt32(truncatingIfNeeded: counterLow >> 32)
        var c2 = UInt32(truncatingIfNeeded: counterHigh), c3 = UInt32(truncatingIfNeeded: counterHigh >> 32)
        var k0 = key.0, k1 = key.1
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) * UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) * UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }
}

/// Standard normal numbers from Philox by the Box–Muller transform: value j of stream
/// `stream` under `seed` is a pure function of (seed, stream, j).
public struct GaussianStream: Sendable {
    /// The counter-based generator, keyed by the seed.
    public let generator: Philox4x32
    /// Which stream of the key: the high half of every block counter.
    public let stream: UInt64

    /// Stream `stream` of the generator keyed by `seed`.
    public init(seed: UInt64, stream: UInt64 = 0) {
        generator = Philox4x32(seed: seed)
        self.stream = stream
    }

    /// The first `count` values of the stream.
    public func values(_ count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        var block: UInt64 = 0
        var index = 0
        while index < count {
            let (a, b, c, d) = generator.block(block, stream)
            for (u, v) in [(a, b), (c, d)] where index < count {
                // Uniforms in (0, 1] and [0, 1) with 32 bits each.
                let u1 = (Double(u) + 1) / 4_294_967_296.0
                let u2 = Double(v) / 4_294_967_296.0
                let radius = (-2 * _log(u1)).squareRoot()
                out[index] = Float(radius * _cos(2 * Double.pi * u2))
                if index + 1 < count { out[index + 1] = Float(radius * _sin(2 * Double.pi * u2)) }
                index += 2
            }
            block += 1
        }
        return out
    }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Foundation.sin(x) }

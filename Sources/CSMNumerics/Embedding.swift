import Foundation

/// Noise-level embeddings of EDM networks: rows of [cos | sin] features.
public enum NoiseEmbedding {
    /// DDPM++/ADM positional embedding: freqs_i = (1/maxPositions)^(i / (C/2 − endpoint)),
    /// output [cos(x·freqs) | sin(x·freqs)] per row, C = `channels`.
    public static func positional(_ x: [Float], channels: Int, maxPositions: Float = 10000, endpoint: Bool) -> [Float] {
        let half = channels / 2
        let denominator = Float(half - (endpoint ? 1 : 0))
        let freqs = (0..<half).map { Float(pow(Double(1 / maxPositions), Double(Float($0) / denominator))) }
        return embed(x, freqs: freqs)
    }

    /// NCSN++ random Fourier embedding with stored frequencies: [cos(2π·x·f) | sin(2π·x·f)].
    public static func fourier(_ x: [Float], freqs: [Float]) -> [Float] {
        embed(x, freqs: freqs.map { 2 * Float.pi * $0 })
    }

    static func embed(_ x: [Float], freqs: [Float]) -> [Float] {
        let half = freqs.count
        var out = [Float](repeating: 0, count: x.count * 2 * half)
        for (row, value) in x.enumerated() {
            for i in 0..<half {
                let angle = value * freqs[i]
                out[row * 2 * half + i] = Foundation.cos(angle)
                out[row * 2 * half + half + i] = Foundation.sin(angle)
            }
        }
        return out
    }
}

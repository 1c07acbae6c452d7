/// 3×3 convolution (stride 1, padding 1) by Winograd's minimal filtering F(2×2, 3×3)
/// (Lavin & Gray, 2016): each 2×2 output tile costs 16 multiply-adds per channel pair
/// instead of 36, done as 16 GEMMs over tiles. Inputs and outputs are NHWC.
public struct WinogradWeights: Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    /// U = G·g·Gᵀ: [16][Cin][Cout].
    public let transformed: [Float]
    public let bias: [Float]?

    /// From PyTorch-layout weights [Cout, Cin, 3, 3].
    public init(pytorch weight: [Float], bias: [Float]?, outputChannels: Int, inputChannels: Int) {
        precondition(weight.count == outputChannels * inputChannels * 9)
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.bias = bias
        var u = [Float](repeating: 0, count: 16 * inputChannels * outputChannels)
        let g: [[Float]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        for co in 0..<outputChannels {
            for ci in 0..<inputChannels {
                let base = (co * inputChannels + ci) * 9
                // t = G·w (4×3), then U = t·Gᵀ (4×4).
                var t = [[Float]](repeating: [0, 0, 0], count: 4)
                for i in 0..<4 { for j in 0..<3 { for k in 0..<3 { t[i][j] += g[i][k] * weight[base + k * 3 + j] } } }
                for i in 0..<4 {
                    for j in 0..<4 {
                        var value: Float = 0
                        for k in 0..<3 { value += t[i][k] * g[j][k] }
                        u[((i * 4 + j) * inputChannels + ci) * outputChannels + co] = value
                    }
                }
            }
        }
        transformed = u
    }
}

public enum Winograd {
    typealias V = SIMD16<Float>

    /// conv3×3(x, w) + b with padding 1.
    public static func apply(_ x: FeatureMap, _ w: WinogradWeights) -> FeatureMap {
        Profiler.measure("conv3x3") { convolve(x, w) }
    }

    static func convolve(_ x: FeatureMap, _ w: WinogradWeights) -> FeatureMap {
        precondition(x.channels == w.inputChannels, "convolution: \(x.channels) input channels, weights expect \(w.inputChannels)")
        let cin = w.inputChannels, cout = w.outputChannels
        let h = x.height, wd = x.width
        let tilesY = (h + 1) / 2, tilesX = (wd + 1) / 2
        let tilesPerImage = tilesY * tilesX
        let totalTiles = x.count * tilesPerImage
        let chunk = max(32, min(totalTiles, (1 << 19) / (16 * (cin + cout))))
        var y = FeatureMap(uninitializedCount: x.count, height: h, width: wd, channels: cout)
        // The 16 matrices sit a little more than a power of two apart, so that a tile's 16
        // loads and stores do not all fall into the same cache set.
        let vStride = chunk * cin + 48, mStride = chunk * cout + 48
        let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * vStride)
        let m = UnsafeMutablePointer<Float>.allocate(capacity: 16 * mStride)
        let zeros = UnsafeMutablePointer<Float>.allocate(capacity: cin + 16)
        zeros.initialize(repeating: 0, count: cin + 16)
        let rows = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: 16)
        let scratch = UnsafeMutablePointer<V>.allocate(capacity: 16)
        defer { v.deallocate(); m.deallocate(); zeros.deallocate(); rows.deallocate(); scratch.deallocate() }
        let biasValues = w.bias ?? [Float](repeating: 0, count: cout)
        x.values.withUnsafeBufferPointer { xb in
        y.values.withUnsafeMutableBufferPointer { yb in
        w.transformed.withUnsafeBufferPointer { ub in
        biasValues.withUnsafeBufferPointer { bb in
            let xp = xb.baseAddress!, yp = yb.baseAddress!
            var start = 0
            while start < totalTiles {
                let count = min(chunk, totalTiles - start)
                for t in 0..<count {
                    let tile = start + t
                    let n = tile / tilesPerImage, r = tile % tilesPerImage
                    let y0 = 2 * (r / tilesX) - 1, x0 = 2 * (r % tilesX) - 1
                    for k in 0..<16 { rows[k] = UnsafePointer(zeros) }
                    for i in 0..<4 {
                        let iy = y0 + i
                        guard iy >= 0 && iy < h else { continue }
                        for j in 0..<4 {
                            let ix = x0 + j
                            if ix >= 0 && ix < wd { rows[i * 4 + j] = xp + ((n * h + iy) * wd + ix) * cin }
                        }
                    }
                    inputTransform(rows, channels: cin, into: v + t * cin, stride: vStride, scratch: scratch)
                }
                for xi in 0..<16 {
                    BLAS.sgemm(m: count, n: cout, k: cin, a: v + xi * vStride, lda: cin,
                               b: ub.baseAddress! + xi * cin * cout, ldb: cout, c: m + xi * mStride, ldc: cout)
                }
                for t in 0..<count {
                    let tile = start + t
                    let n = tile / tilesPerImage, r = tile % tilesPerImage
                    let oy = 2 * (r / tilesX), ox = 2 * (r % tilesX)
                    let base = yp + ((n * h + oy) * wd + ox) * cout
                    outputTransform(m + t * cout, stride: mStride, channels: cout, bias: bb.baseAddress!,
                                    out: base, rowStride: wd * cout, keepRight: ox + 1 < wd, keepBottom: oy + 1 < h, scratch: scratch)
                }
                start += count
            }
        }
        }
        }
        }
        return y
    }

    /// V = Bᵀ·d·B for one 4×4 tile; `rows[i·4+j]` points at the channels of input pixel (i, j).
    @inline(__always)
    static func inputTransform(_ d: UnsafeMutablePointer<UnsafePointer<Float>>, channels: Int, into out: UnsafeMutablePointer<Float>,
                               stride: Int, scratch t: UnsafeMutablePointer<V>) {
        var c = 0
        while c < channels {
            let width = min(16, channels - c)
            @inline(__always) func load(_ k: Int) -> V {
                if width == 16 { return UnsafeRawPointer(d[k] + c).loadUnaligned(as: V.self) }
                var value = V()
                for e in 0..<width { value[e] = d[k][c + e] }
                return value
            }
            @inline(__always) func store(_ k: Int, _ value: V) {
                let p = out + k * stride + c
                if width == 16 { UnsafeMutableRawPointer(p).storeBytes(of: value, as: V.self) } else { for e in 0..<width { p[e] = value[e] } }
            }
            // Rows: t = Bᵀ·d.
            for j in 0..<4 {
                let d0 = load(j), d1 = load(4 + j), d2 = load(8 + j), d3 = load(12 + j)
                t[j] = d0 - d2
                t[4 + j] = d1 + d2
                t[8 + j] = d2 - d1
                t[12 + j] = d1 - d3
            }
            // Columns: V = t·B.
            for i in 0..<4 {
                let t0 = t[i * 4], t1 = t[i * 4 + 1], t2 = t[i * 4 + 2], t3 = t[i * 4 + 3]
                store(i * 4, t0 - t2)
                store(i * 4 + 1, t1 + t2)
                store(i * 4 + 2, t2 - t1)
                store(i * 4 + 3, t1 - t3)
            }
            c += 16
        }
    }

    /// Y = Aᵀ·M·A + bias for one tile, written at `out` (2×2 pixels, clipped at edges).
    @inline(__always)
    static func outputTransform(_ m: UnsafeMutablePointer<Float>, stride: Int, channels: Int, bias: UnsafePointer<Float>,
                                out: UnsafeMutablePointer<Float>, rowStride: Int, keepRight: Bool, keepBottom: Bool,
                                scratch: UnsafeMutablePointer<V>) {
        var c = 0
        while c < channels {
            let width = min(16, channels - c)
            @inline(__always) func load(_ k: Int) -> V {
                let p = m + k * stride + c
                if width == 16 { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
                var value = V()
                for e in 0..<width { value[e] = p[e] }
                return value
            }
            @inline(__always) func store(_ p: UnsafeMutablePointer<Float>, _ value: V) {
                if width == 16 { UnsafeMutableRawPointer(p + c).storeBytes(of: value, as: V.self) } else { for e in 0..<width { p[c + e] = value[e] } }
            }
            var b = V()
            if width == 16 { b = UnsafeRawPointer(bias + c).loadUnaligned(as: V.self) } else { for e in 0..<width { b[e] = bias[c + e] } }
            // Rows: s = Aᵀ·M (2×4).
            let s0 = scratch, s1 = scratch + 4
            for j in 0..<4 {
                let m0 = load(j), m1 = load(4 + j), m2 = load(8 + j), m3 = load(12 + j)
                s0[j] = m0 + m1 + m2
                s1[j] = m1 - m2 - m3
            }
            store(out, s0[0] + s0[1] + s0[2] + b)
            if keepRight { store(out + channels, s0[1] - s0[2] - s0[3] + b) }
            if keepBottom {
                store(out + rowStride, s1[0] + s1[1] + s1[2] + b)
                if keepRight { store(out + rowStride + channels, s1[1] - s1[2] - s1[3] + b) }
            }
            c += 16
        }
    }
}

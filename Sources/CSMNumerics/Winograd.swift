import Foundation

/// 3×3 convolution (stride 1, padding 1) by Winograd's minimal filtering (Lavin & Gray,
/// 2016): F(2×2, 3×3) computes a 2×2 output tile from a 4×4 input tile with 16 products per
/// channel pair instead of 36; F(4×4, 3×3) a 4×4 tile from 6×6 with 36 instead of 144. The
/// products over channels are α² GEMMs over all tiles. NHWC in and out, any channel counts:
/// the transforms run on 16 channels at a time (the vector width), the last group of a
/// count that is not a multiple of 16 padded with zeros inside the kernel.
public struct WinogradWeights: Sendable {
    /// Output tile side m: 2 for F(2×2, 3×3), 4 for F(4×4, 3×3).
    public let tile: Int
    public let inputChannels: Int
    public let outputChannels: Int
    /// U = G·g·Gᵀ: [α²][Cin][Cout], α = tile + 2 (empty at bf16 precision).
    public let transformed: [Float]
    /// U in bf16 for oneDNN's batched bf16 products (nil at fp32 precision): one copy of the weights.
    let transformedBF16: BFloat16Matrices?
    /// The arithmetic of the α² products: at bf16 the transformed inputs and weights are
    /// rounded to bf16 and the products summed in fp32; the transforms stay fp32.
    public var precision: Precision { transformedBF16 == nil ? .fp32 : .bf16 }
    /// [Cout rounded up to a multiple of 16], zeros past Cout.
    let paddedBias: [Float]

    /// True when `Winograd` is expected to beat im2col + GEMM for these channel counts (it
    /// runs any positive counts; below 8 the padding to 16 costs more than it saves).
    public static func isWorthwhile(inputChannels: Int, outputChannels: Int) -> Bool {
        inputChannels >= 8 && outputChannels >= 8
    }

    /// The filter transforms G (α×3).
    static let g2: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
    static let g4: [[Double]] = [
        [1.0 / 4, 0, 0],
        [-1.0 / 6, -1.0 / 6, -1.0 / 6],
        [-1.0 / 6, 1.0 / 6, -1.0 / 6],
        [1.0 / 24, 1.0 / 12, 1.0 / 6],
        [1.0 / 24, -1.0 / 12, 1.0 / 6],
        [0, 0, 1],
    ]

    /// From PyTorch-layout weights [Cout, Cin, 3, 3] and an optional bias [Cout] (added by
    /// the forward kernel). U = G·g·Gᵀ, computed separably in float64, the rows of each
    /// point's matrix spread over the cores; at bf16 then rounded and kept in bf16 only.
    public init(pytorch weight: [Float], bias: [Float]?, outputChannels cout: Int, inputChannels cin: Int, tile: Int = 2,
                precision: Precision = .fp32) {
        kernelPrecondition(cin > 0 && cout > 0 && (tile == 2 || tile == 4), "Winograd: \(cin)→\(cout) channels, tile \(tile)")
        kernelPrecondition(weight.count == cout * cin * 9 && (bias?.count ?? cout) == cout,
                           "Winograd: \(weight.count) weights and \(bias?.count ?? 0) biases for \(cin)→\(cout) channels")
        let g = (tile == 2 ? Self.g2 : Self.g4).flatMap { $0 }
        let alpha = tile + 2, points = alpha * alpha
        // Every entry is written below.
        var u = [Float](unsafeUninitializedCapacity: points * cin * cout) { _, initialized in initialized = points * cin * cout }
        // Rows of each point's matrix split over the cores; along a row the entries are
        // contiguous, so each core writes α² streams.
        let parts = Parallel.ranges(cin)
        u.withUnsafeMutableBufferPointer { ub in
        let u = ub
        Parallel.forEach(parts.count) { part in
        var half = [Double](repeating: 0, count: alpha * 3)
        for row in parts[part] {
            for column in 0..<cout {
                let base = (column * cin + row) * 9
                // half[i][l] = Σ_k G[i][k]·g[k][l].
                for i in 0..<alpha {
                    for l in 0..<3 {
                        var s = 0.0
                        for k in 0..<3 {
                            s += g[i * 3 + k] * Double(weight[base + k * 3 + l])
                        }
                        half[i * 3 + l] = s
                    }
                }
                for i in 0..<alpha {
                    for j in 0..<alpha {
                        let s = half[i * 3] * g[j * 3] + half[i * 3 + 1] * g[j * 3 + 1] + half[i * 3 + 2] * g[j * 3 + 2]
                        u[((i * alpha + j) * cin + row) * cout + column] = Float(s)
                    }
                }
            }
        }
        }
        }
        self.tile = tile
        inputChannels = cin
        outputChannels = cout
        paddedBias = (bias ?? [Float](repeating: 0, count: cout)) + [Float](repeating: 0, count: Winograd.roundedUp(cout) - cout)
        if precision == .bf16 {
            transformedBF16 = u.withUnsafeBufferPointer { BFloat16Matrices($0, count: points, rows: cin, columns: cout) }
            transformed = []
        } else {
            transformedBF16 = nil
            transformed = u
        }
    }
}

public enum Winograd {
    typealias V = SIMD16<Float>

    /// `channels` rounded up to a multiple of the vector width 16.
    static func roundedUp(_ channels: Int) -> Int { (channels + 15) / 16 * 16 }

    /// Floats of transformed input and product per chunk of tiles (tuning knob).
    static let chunkFloats: Int = {
        if let text = getenv("CSM_WINOGRAD_CHUNK"), let value = Int(String(cString: text)), value > 0 { return value }
        return 1 << 17
    }()

    /// The fewest tiles per chunk (tuning knob `CSM_WINOGRAD_MIN_TILES`): the GEMMs of a
    /// chunk are tiles × Cin × Cout, and OpenBLAS packs each point's Cin × Cout weights on
    /// every call, so wide layers need enough tiles to pay for that even when the chunk then
    /// outgrows `chunkFloats` (measured: the 56 M-parameter DDPM++ network at 256 channels
    /// 1.3–1.5× faster at 96 than at 16 tiles, the default model 5–15 %, ResNet-20 training
    /// unchanged).
    static let minimumTiles: Int = {
        if let text = getenv("CSM_WINOGRAD_MIN_TILES"), let value = Int(String(cString: text)), value > 0 { return value }
        return 96
    }()

    /// The tile size networks use: `CSM_WINOGRAD_TILE` (2 or 4) if set, else 4.
    public static let defaultTile: Int = {
        if let text = getenv("CSM_WINOGRAD_TILE"), let tile = Int(String(cString: text)), tile == 2 || tile == 4 { return tile }
        return 4
    }()

    /// conv3×3(x, w) + b with padding 1; with a `residual` r of the output's shape,
    /// (conv3×3(x, w) + b + r)·scale, added in the output transform (the same floats as
    /// adding r and scaling afterwards, without another pass over the output).
    public static func apply(_ x: FeatureMap, _ w: WinogradWeights, residual: FeatureMap? = nil, scale: Float = 1) -> FeatureMap {
        // FLOPs are counted as a direct convolution's, the figure users compare.
        Profiler.addFLOPs(2 * 9 * x.count * x.pixels * w.inputChannels * w.outputChannels)
        return Profiler.measure("conv3x3") {
            Profiler.withoutFLOPCounting {
                w.tile == 2 ? convolve(x, w, F2.self, residual: residual, scale: scale) : convolve(x, w, F4.self, residual: residual, scale: scale)
            }
        }
    }

    /// The `lanes` (1…16) floats at `p` as a vector, zeros after them.
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, lanes: Int) -> V {
        if lanes == 16 { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        var v = V()
        for i in 0..<lanes { v[i] = p[i] }
        return v
    }

    /// Writes the first `lanes` (1…16) floats of `v` to `p`.
    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, lanes: Int) {
        if lanes == 16 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
        } else {
            for i in 0..<lanes { p[i] = v[i] }
        }
    }

    /// Room for `floats` floats, aligned for vectors.
    static func allocateVectors(floats: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.stride, alignment: MemoryLayout<V>.alignment)
            .bindMemory(to: Float.self, capacity: floats)
    }

    /// `p` (vector-aligned: a multiple of 16 floats into an `allocateVectors` buffer) as vectors.
    @inline(__always)
    static func vectors(_ p: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<V> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: V.self)
    }

    /// The side×side patch of image `n` at (y0, x0), channels c..<c + lanes, into `patch`
    /// (row-major; zeros outside the image).
    @inline(__always)
    static func gather(_ xp: UnsafePointer<Float>, image n: Int, y0: Int, x0: Int, height h: Int, width w: Int, channels: Int,
                       from c: Int, lanes: Int, side: Int, into patch: UnsafeMutablePointer<V>) {
        let i0 = max(0, -y0), i1 = min(side, h - y0), j0 = max(0, -x0), j1 = min(side, w - x0)
        if i0 > 0 || j0 > 0 || i1 < side || j1 < side {
            for k in 0..<(side * side) { patch[k] = V() }
        }
        guard i0 < i1 && j0 < j1 else { return }
        for i in i0..<i1 {
            let row = xp + ((n * h + y0 + i) * w + x0) * channels + c
            for j in j0..<j1 { patch[i * side + j] = load(row + j * channels, lanes: lanes) }
        }
    }

    static func convolve<T: WinogradTransform>(_ x: FeatureMap, _ w: WinogradWeights, _: T.Type, residual: FeatureMap?,
                                               scale: Float) -> FeatureMap {
        let cin = w.inputChannels, cout = w.outputChannels, m = T.tile, alpha = m + 2, points = alpha * alpha
        kernelPrecondition(x.channels == cin && x.hasConsistentShape,
                           "convolution: \(x.channels) input channels, weights expect \(cin)")
        kernelPrecondition(residual.map { $0.count == x.count && $0.height == x.height && $0.width == x.width && $0.channels == cout
                               && $0.hasConsistentShape } ?? true,
                           "convolution: the residual does not have the output's shape")
        kernelPrecondition((w.transformed.count == points * cin * cout || w.transformedBF16?.count == points) && w.paddedBias.count == roundedUp(cout),
                           "Winograd: transformed weights do not match \(cin)→\(cout) channels")
        // The transformed inputs and products keep each tile's channels padded to a multiple
        // of 16, so that every vector load and store stays inside its tile's row.
        let cinPadded = roundedUp(cin), coutPadded = roundedUp(cout)
        let h = x.height, wd = x.width
        let tilesY = (h + m - 1) / m, tilesX = (wd + m - 1) / m
        let tilesPerImage = tilesY * tilesX
        let totalTiles = x.count * tilesPerImage
        // Chunks of about equal size (a small last chunk multiplies slowly).
        let limit = min(totalTiles, max(minimumTiles, chunkFloats / (points * (cinPadded + coutPadded))))
        let chunks = (totalTiles + limit - 1) / limit, chunk = (totalTiles + chunks - 1) / chunks
        // At bf16 the transformed inputs go straight into bf16 matrices for the products.
        let bf16 = w.transformedBF16 != nil
        // The α² matrices sit a little more than a power of two apart, so that a tile's
        // loads and stores do not all fall into the same cache set; at bf16 exactly one
        // matrix apart (the chunk's own), as oneDNN's fastest batched kernels need.
        let gap = bf16 ? 0 : 48
        let vStride = chunk * cinPadded + gap, mStride = chunk * coutPadded + gap
        var y = FeatureMap(uninitializedCount: x.count, height: h, width: wd, channels: cout)
        // Vector-aligned, so that the transforms read and write them as vectors in place.
        let v = allocateVectors(floats: bf16 ? 0 : points * vStride), product = allocateVectors(floats: points * mStride)
        let vs = vStride / 16
        let scratch = UnsafeMutablePointer<V>.allocate(capacity: 3 * points)
        // At bf16: one tile's transformed input over all channels, then the chunk's in bf16.
        let tile = allocateVectors(floats: bf16 ? points * cinPadded : 0)
        let rounded = UnsafeMutablePointer<UInt16>.allocate(capacity: bf16 ? points * vStride : 0)
        defer { v.deallocate(); product.deallocate(); scratch.deallocate(); tile.deallocate(); rounded.deallocate() }
        // GEMM leaves the padding columns of the products alone; zero them once so that the
        // output transform only ever reads initialised values (which it then discards).
        if coutPadded != cout { product.initialize(repeating: 0, count: points * mStride) }
        let residualValues = residual?.values ?? []
        x.values.withUnsafeBufferPointer { xb in
        y.values.withUnsafeMutableBufferPointer { yb in
        residualValues.withUnsafeBufferPointer { rb in
        w.transformed.withUnsafeBufferPointer { ub in
        w.paddedBias.withUnsafeBufferPointer { bb in
            // (An empty array may still have a base address.)
            let xp = xb.baseAddress!, yp = yb.baseAddress!, rp = residual == nil ? nil : rb.baseAddress
            var start = 0
            while start < totalTiles {
                let count = min(chunk, totalTiles - start)
                let aStride = bf16 ? count * cinPadded : vStride, cStride = bf16 ? count * coutPadded : mStride
                let ms = cStride / 16, cs = cinPadded / 16
                Profiler.measure("winograd-in") {
                    for t in 0..<count {
                        let r = (start + t) % tilesPerImage, n = (start + t) / tilesPerImage
                        let y0 = m * (r / tilesX) - 1, x0 = m * (r % tilesX) - 1
                        for c in stride(from: 0, to: cin, by: 16) {
                            let lanes = min(16, cin - c)
                            gather(xp, image: n, y0: y0, x0: x0, height: h, width: wd, channels: cin, from: c, lanes: lanes,
                                   side: alpha, into: scratch)
                            let rows = scratch + points
                            for j in 0..<alpha { T.input(scratch + j, alpha, rows + j, alpha) }
                            // Point i·α + k goes to matrix i·α + k (at bf16, to row i·α + k of the tile).
                            let dst = bf16 ? vectors(tile + c) : vectors(v + t * cinPadded + c), step = bf16 ? cs : vs
                            for i in 0..<alpha { T.input(rows + i * alpha, 1, dst + i * alpha * step, step) }
                        }
                        if bf16 {
                            BFloat16Filters.round(tile, into: rounded + t * cinPadded, rows: points, columns: cinPadded, sourceStride: cinPadded,
                                                  destinationStride: aStride)
                        }
                    }
                }
                Profiler.measure("winograd-gemm") {
                    if let matrices = w.transformedBF16 {
                        matrices.multiply(m: count, a: rounded, lda: cinPadded, aStride: aStride, c: product, ldc: coutPadded, cStride: cStride)
                        return
                    }
                    for k in 0..<points {
                        BLAS.sgemm(m: count, n: cout, k: cin, a: v + k * vStride, lda: cinPadded,
                                   b: ub.baseAddress! + k * cin * cout, ldb: cout, c: product + k * mStride, ldc: coutPadded)
                    }
                }
                Profiler.measure("winograd-out") {
                    for t in 0..<count {
                        let r = (start + t) % tilesPerImage, n = (start + t) / tilesPerImage
                        let oy = m * (r / tilesX), ox = m * (r % tilesX)
                        let rowsKept = min(m, h - oy), columnsKept = min(m, wd - ox)
                        for c in stride(from: 0, to: cout, by: 16) {
                            let lanes = min(16, cout - c)
                            let src = vectors(product + t * coutPadded + c)
                            let rows = scratch + points, out = scratch + 2 * points
                            for j in 0..<alpha { T.output(src + j * ms, alpha * ms, rows + j, alpha) }
                            for i in 0..<m { T.output(rows + i * alpha, 1, out + i * m, 1) }
                            let bias = UnsafeRawPointer(bb.baseAddress! + c).loadUnaligned(as: V.self)
                            for i in 0..<rowsKept {
                                for j in 0..<columnsKept {
                                    let at = ((n * h + oy + i) * wd + ox + j) * cout + c
                                    if let rp {
                                        store((out[i * m + j] + bias + load(rp + at, lanes: lanes)) * scale, yp + at, lanes: lanes)
                                    } else {
                                        store(out[i * m + j] + bias, yp + at, lanes: lanes)
                                    }
                                }
                            }
                        }
                    }
                }
                start += count
            }
        }
        }
        }
        }
        }
        return y
    }
}

/// The 1-D transforms of one Winograd variant: input (Bᵀ, α → α) and output (Aᵀ, α → m),
/// each reading and writing vectors `stride` apart.
protocol WinogradTransform {
    static var tile: Int { get }
    static func input(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int)
    static func output(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int)
}

/// F(2×2, 3×3): points 0, ±1, ∞.
enum F2: WinogradTransform {
    static var tile: Int { 2 }

    @inline(__always)
    static func input(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int) {
        let d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds]
        o[0] = d0 - d2
        o[os] = d1 + d2
        o[2 * os] = d2 - d1
        o[3 * os] = d1 - d3
    }

    @inline(__always)
    static func output(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int) {
        let m0 = d[0], m1 = d[ds], m2 = d[2 * ds], m3 = d[3 * ds]
        o[0] = m0 + m1 + m2
        o[os] = m1 - m2 - m3
    }
}

/// F(4×4, 3×3): points 0, ±1, ±2, ∞.
enum F4: WinogradTransform {
    static var tile: Int { 4 }

    @inline(__always)
    static func input(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int) {
        let d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds]
        let a = d4 - 4 * d2, b = d3 - 4 * d1, c = d4 - d2, e = 2 * (d3 - d1)
        o[0] = 4 * d0 - 5 * d2 + d4
        o[os] = a + b
        o[2 * os] = a - b
        o[3 * os] = c + e
        o[4 * os] = c - e
        o[5 * os] = 4 * d1 - 5 * d3 + d5
    }

    @inline(__always)
    static func output(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int) {
        let m0 = d[0], m1 = d[ds], m2 = d[2 * ds], m3 = d[3 * ds], m4 = d[4 * ds], m5 = d[5 * ds]
        let s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4
        o[0] = m0 + s12 + s34
        o[os] = d12 + 2 * d34
        o[2 * os] = s12 + 4 * s34
        o[3 * os] = d12 + 8 * d34 + m5
    }
}

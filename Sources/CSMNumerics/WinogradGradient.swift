/// The weight gradient of a 3×3, stride-1, padding-1 convolution in the Winograd domain.
///
/// The forward computes each output tile as Y = Aᵀ[Σ_ci U ⊙ V]A with U = G·g·Gᵀ and
/// V = Bᵀ·d·B, so for an output gradient dY the filter gradient is
/// dg = Gᵀ[Σ_tiles (A·dY·Aᵀ) ⊙ V]G: per point ξ of the α×α domain, one GEMM
/// Vᵀ[ξ] (Cin × tiles) · M[ξ] (tiles × Cout), then the α×α → 3×3 transform. Channel counts
/// must be multiples of 16 (`WinogradWeights.supportsGradients`); other layers take the
/// im2col gradients.
public enum WinogradGradient {
    typealias V = SIMD16<Float>

    /// dL/dw of one chunk in the packed layout of `ConvolutionWeights` ([9·Cin, Cout]), for
    /// y = conv3×3(x, w) with padding 1 and output gradient `dy`, by F(`tile`×`tile`, 3×3).
    public static func weight(_ x: FeatureMap, _ dy: FeatureMap, tile: Int = Winograd.defaultTile) -> [Float] {
        kernelPrecondition(tile == 2 || tile == 4, "Winograd weight gradient: tile \(tile)")
        kernelPrecondition(WinogradWeights.supportsGradients(inputChannels: x.channels, outputChannels: dy.channels),
                           "Winograd weight gradient: channel counts must be multiples of 16")
        kernelPrecondition(x.count == dy.count && x.height == dy.height && x.width == dy.width && x.hasConsistentShape
                           && dy.hasConsistentShape, "Winograd weight gradient: output gradient shape does not match the input shape")
        return Profiler.measure("winograd-dw") { tile == 2 ? gradient(x, dy, F2.self) : gradient(x, dy, F4.self) }
    }

    static func gradient<T: WinogradGradientTransform>(_ x: FeatureMap, _ dy: FeatureMap, _: T.Type) -> [Float] {
        let cin = x.channels, cout = dy.channels, m = T.tile, alpha = m + 2, points = alpha * alpha
        let h = x.height, wd = x.width
        let tilesX = (wd + m - 1) / m, tilesPerImage = ((h + m - 1) / m) * tilesX
        let totalTiles = x.count * tilesPerImage
        // Half the forward's chunk: the GEMMs accumulate into dU (β = 1), and smaller operands
        // stay in L2 (measured: ResNet-20's weight gradients 10–15 % faster than at the forward's size).
        let chunk = min(totalTiles, max(Winograd.minimumTiles, Winograd.chunkFloats / (2 * points * (cin + cout))))
        let vStride = chunk * cin + 48, mStride = chunk * cout + 48
        guard totalTiles > 0 else { return [Float](repeating: 0, count: 9 * cin * cout) }
        // dU: [α²][Cin][Cout], written in full by the first chunk's GEMMs (β = 0).
        var du = [Float](unsafeUninitializedCapacity: points * cin * cout) { _, initialized in initialized = points * cin * cout }
        let v = Winograd.allocateVectors(floats: points * vStride), mt = Winograd.allocateVectors(floats: points * mStride)
        let vs = vStride / 16, ms = mStride / 16
        let scratch = UnsafeMutablePointer<V>.allocate(capacity: 3 * points)
        defer { v.deallocate(); mt.deallocate(); scratch.deallocate() }
        x.values.withUnsafeBufferPointer { xb in
        dy.values.withUnsafeBufferPointer { db in
        du.withUnsafeMutableBufferPointer { ub in
            let xp = xb.baseAddress!, dp = db.baseAddress!, up = ub.baseAddress!
            var start = 0
            while start < totalTiles {
                let count = min(chunk, totalTiles - start)
                for t in 0..<count {
                    let r = (start + t) % tilesPerImage, n = (start + t) / tilesPerImage
                    let oy = m * (r / tilesX), ox = m * (r % tilesX)
                    // V = Bᵀ·d·B of the α×α input patch (zeros outside the image).
                    for c in stride(from: 0, to: cin, by: 16) {
                        Winograd.gather(xp, image: n, y0: oy - 1, x0: ox - 1, height: h, width: wd, channels: cin, from: c, lanes: 16,
                                        side: alpha, into: scratch)
                        let rows = scratch + points, dst = Winograd.vectors(v + t * cin + c)
                        for j in 0..<alpha { T.input(scratch + j, alpha, rows + j, alpha) }
                        for i in 0..<alpha { T.input(rows + i * alpha, 1, dst + i * alpha * vs, vs) }
                    }
                    // M = A·dY·Aᵀ of the m×m output-gradient tile (zeros beyond the image).
                    for c in stride(from: 0, to: cout, by: 16) {
                        Winograd.gather(dp, image: n, y0: oy, x0: ox, height: h, width: wd, channels: cout, from: c, lanes: 16,
                                        side: m, into: scratch)
                        let rows = scratch + points, dst = Winograd.vectors(mt + t * cout + c)
                        for j in 0..<m { T.outputAdjoint(scratch + j, m, rows + j, m) }
                        for i in 0..<alpha { T.outputAdjoint(rows + i * m, 1, dst + i * alpha * ms, ms) }
                    }
                }
                for k in 0..<points {
                    BLAS.sgemm(transposeA: true, m: cin, n: cout, k: count, a: v + k * vStride, lda: cin, b: mt + k * mStride, ldb: cout,
                               beta: start == 0 ? 0 : 1, c: up + k * cin * cout, ldc: cout)
                }
                start += count
            }
        }
        }
        }
        return filterAdjoint(du, inputChannels: cin, outputChannels: cout, tile: m)
    }

    /// dg = Gᵀ·dU·G per channel pair, in the packed layout [(ky·3 + kx)·Cin + ci][co]:
    /// separably, each step a vectorised pass over all channel pairs.
    static func filterAdjoint(_ du: [Float], inputChannels cin: Int, outputChannels cout: Int, tile: Int) -> [Float] {
        let g = (tile == 2 ? WinogradWeights.g2 : WinogradWeights.g4).map { $0.map { Float($0) } }
        let alpha = tile + 2, pairs = cin * cout
        var packed = [Float](repeating: 0, count: 9 * pairs)
        // half[i][l] = Σ_j dU[i][j]·G[j][l]; dg[k][l] = Σ_i G[i][k]·half[i][l]; pair = ci·Cout + co,
        // the packed row (k·3 + l)·Cin + ci.
        var half = [Float](repeating: 0, count: alpha * 3 * pairs)
        du.withUnsafeBufferPointer { ub in
        half.withUnsafeMutableBufferPointer { hb in
        packed.withUnsafeMutableBufferPointer { pb in
            let up = ub.baseAddress!, hp = hb.baseAddress!, pp = pb.baseAddress!
            for i in 0..<alpha {
                for l in 0..<3 {
                    let out = hp + (i * 3 + l) * pairs
                    for j in 0..<alpha where g[j][l] != 0 {
                        let coefficient = g[j][l], src = up + (i * alpha + j) * pairs
                        for p in 0..<pairs { out[p] += coefficient * src[p] }
                    }
                }
            }
            for k in 0..<3 {
                for l in 0..<3 {
                    let out = pp + (k * 3 + l) * pairs
                    for i in 0..<alpha where g[i][k] != 0 {
                        let coefficient = g[i][k], src = hp + (i * 3 + l) * pairs
                        for p in 0..<pairs { out[p] += coefficient * src[p] }
                    }
                }
            }
        }
        }
        }
        return packed
    }
}

/// A Winograd variant with the adjoint of its output transform (A: m → α), for gradients.
protocol WinogradGradientTransform: WinogradTransform {
    static func outputAdjoint(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int)
}

extension F2: WinogradGradientTransform {
    /// A for Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]].
    @inline(__always)
    static func outputAdjoint(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int) {
        let y0 = d[0], y1 = d[ds]
        o[0] = y0
        o[os] = y0 + y1
        o[2 * os] = y0 - y1
        o[3 * os] = -y1
    }
}

extension F4: WinogradGradientTransform {
    /// A for Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]].
    @inline(__always)
    static func outputAdjoint(_ d: UnsafeMutablePointer<SIMD16<Float>>, _ ds: Int, _ o: UnsafeMutablePointer<SIMD16<Float>>, _ os: Int) {
        let y0 = d[0], y1 = d[ds], y2 = d[2 * ds], y3 = d[3 * ds]
        let even = y0 + y2, odd = y1 + y3, even4 = y0 + 4 * y2, odd8 = 2 * y1 + 8 * y3
        o[0] = y0
        o[os] = even + odd
        o[2 * os] = even - odd
        o[3 * os] = even4 + odd8
        o[4 * os] = even4 - odd8
        o[5 * os] = y3
    }
}

extension WinogradWeights {
    /// True when `WinogradGradient` can compute the weight gradient of a layer with these
    /// channel counts (multiples of 16; the forward kernel takes any count).
    public static func supportsGradients(inputChannels: Int, outputChannels: Int) -> Bool {
        inputChannels > 0 && outputChannels > 0 && inputChannels % 16 == 0 && outputChannels % 16 == 0
    }

    /// Winograd weights for training, where they change every step: the forward kernel of
    /// PyTorch-layout weights [Cout, Cin, 3, 3] (no bias), or with `transposed` the kernel
    /// of the input gradient (w′[ci, co] = w[co, ci] flipped, see
    /// `ConvolutionGradient.transposedFlipped3x3`). U = G·g·Gᵀ, computed separably in
    /// float64, the rows of each point's matrix spread over the cores. `init(pytorch:)`
    /// is this with a bias. `bias` ([Cout], not with
    /// `transposed`) is added by the forward kernel. At bf16 `precision` only the bf16
    /// copy is kept (inference).
    public init(training weight: [Float], outputChannels cout: Int, inputChannels cin: Int, tile: Int, transposed: Bool,
                bias: [Float]? = nil, precision: Precision = .fp32) {
        kernelPrecondition(weight.count == cout * cin * 9 && (tile == 2 || tile == 4) && cin > 0 && cout > 0,
                           "Winograd: \(weight.count) weights for \(cin)→\(cout) channels, tile \(tile)")
        let g = (tile == 2 ? Self.g2 : Self.g4).flatMap { $0 }
        let alpha = tile + 2, points = alpha * alpha
        let inputs = transposed ? cout : cin, outputs = transposed ? cin : cout
        // Every entry is written below.
        var u = [Float](unsafeUninitializedCapacity: points * cin * cout) { _, initialized in initialized = points * cin * cout }
        // Rows of each point's matrix split over the cores; along a row the entries are
        // contiguous, so each core writes α² streams.
        let parts = Parallel.ranges(inputs)
        u.withUnsafeMutableBufferPointer { ub in
        let u = ub
        Parallel.forEach(parts.count) { part in
        var half = [Double](repeating: 0, count: alpha * 3)
        for row in parts[part] {
            for column in 0..<outputs {
                let (co, ci) = transposed ? (row, column) : (column, row)
                let base = (co * cin + ci) * 9
                // half[i][l] = Σ_k G[i][k]·g[k][l], g flipped for the input gradient.
                for i in 0..<alpha {
                    for l in 0..<3 {
                        var s = 0.0
                        for k in 0..<3 {
                            let w = transposed ? weight[base + 8 - (k * 3 + l)] : weight[base + k * 3 + l]
                            s += g[i * 3 + k] * Double(w)
                        }
                        half[i * 3 + l] = s
                    }
                }
                for i in 0..<alpha {
                    for j in 0..<alpha {
                        let s = half[i * 3] * g[j * 3] + half[i * 3 + 1] * g[j * 3 + 1] + half[i * 3 + 2] * g[j * 3 + 2]
                        u[((i * alpha + j) * inputs + row) * outputs + column] = Float(s)
                    }
                }
            }
        }
        }
        }
        self.tile = tile
        inputChannels = inputs
        outputChannels = outputs
        paddedBias = (bias ?? [Float](repeating: 0, count: outputs)) + [Float](repeating: 0, count: Winograd.roundedUp(outputs) - outputs)
        transformed = precision == .fp32 ? u : []
        transformedBF16 = precision == .bf16 ? BFloat16Matrices(u, batch: points, rows: inputs, columns: outputs) : nil
    }
}

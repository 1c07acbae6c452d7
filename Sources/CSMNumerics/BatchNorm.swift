/// The statistics of one batch-norm layer over a training batch: per-channel mean and
/// biased variance (what training-mode normalisation uses).
public struct BatchNormStatistics: Sendable {
    /// Values per channel (images × pixels).
    public let count: Int
    public let mean: [Float]
    /// Biased variance: Σ(x − mean)² / count.
    public let variance: [Float]
    /// 1 / √(variance + ε).
    public let inverseStd: [Float]

    /// From per-channel Σx and Σx² over `count` values.
    public init(sums: [Double], squares: [Double], count: Int, epsilon: Float) {
        self.count = count
        let n = Double(count)
        let means = sums.map { $0 / n }
        let variances = zip(squares, means).map { max(0, $0 / n - $1 * $1) }
        mean = means.map { Float($0) }
        variance = variances.map { Float($0) }
        inverseStd = variances.map { Float(1 / ($0 + Double(epsilon)).squareRoot()) }
    }

    /// The unbiased variance PyTorch keeps in the running statistics: variance·n/(n − 1).
    public var unbiasedVariance: [Float] {
        let n = Double(count)
        return variance.map { count > 1 ? Float(Double($0) * n / (n - 1)) : $0 }
    }
}

/// Σdy and Σdy·x̂ per channel over a training batch (Double, summed in chunk order).
public struct BatchNormGradientSums: Sendable {
    public let sumDy: [Double]
    public let sumDyXhat: [Double]

    /// The sums of every chunk's `BatchNorm.maskAndSum`, added in chunk order.
    public init(partials: [([Double], [Double])]) {
        sumDy = BatchChunks.sum(partials.map(\.0))
        sumDyXhat = BatchChunks.sum(partials.map(\.1))
    }

    /// dL/dγ.
    public var gamma: [Float] { sumDyXhat.map { Float($0) } }
    /// dL/dβ.
    public var beta: [Float] { sumDy.map { Float($0) } }
}

/// Batch normalisation over NHWC maps, PyTorch's rules: training mode normalises with the
/// batch's mean and biased variance, y = γ·(x − μ)/√(σ² + ε) + β, optionally followed by a
/// residual add and ReLU; eval mode uses running statistics. Batches are lists of chunks
/// (see `BatchChunks`), the statistics and parameter gradients summed in chunk order.
public enum BatchNorm {
    /// Training-mode forward over a batch split into `chunks`: returns the normalised chunks
    /// (plus `residual` chunks, then ReLU, when asked) and the batch statistics.
    public static func trainingForward(_ chunks: [FeatureMap], gamma: [Float], beta: [Float], epsilon: Float = 1e-5,
                                       residual: [FeatureMap]? = nil, relu: Bool) -> (y: [FeatureMap], statistics: BatchNormStatistics) {
        let statistics = Profiler.measure("bn-forward") { batchStatistics(chunks, epsilon: epsilon) }
        return (normalize(chunks, statistics: statistics, gamma: gamma, beta: beta, residual: residual, relu: relu), statistics)
    }

    /// The normalisation of training mode over chunks, given the batch statistics.
    public static func normalize(_ chunks: [FeatureMap], statistics: BatchNormStatistics, gamma: [Float], beta: [Float],
                                 residual: [FeatureMap]? = nil, relu: Bool) -> [FeatureMap] {
        Profiler.measure("bn-forward") {
            BatchChunks.map(chunks.count) { i in
                normalize(chunks[i], mean: statistics.mean, inverseStd: statistics.inverseStd, gamma: gamma, beta: beta,
                          residual: residual?[i], relu: relu)
            }
        }
    }

    /// Mean and biased variance over all chunks (Σx and Σx² in Double per chunk, then in chunk order).
    public static func batchStatistics(_ chunks: [FeatureMap], epsilon: Float) -> BatchNormStatistics {
        let partials = BatchChunks.map(chunks.count) { i in sumsAndSquares(chunks[i]) }
        return batchStatistics(partials: partials, count: chunks.reduce(0) { $0 + $1.count * $1.pixels }, epsilon: epsilon)
    }

    /// Mean and biased variance from every chunk's `sumsAndSquares` (in chunk order) over
    /// `count` values per channel. Layers that compute each chunk's sums right after
    /// producing it (while it is still in cache) finish the statistics with this.
    public static func batchStatistics(partials: [([Double], [Double])], count: Int, epsilon: Float) -> BatchNormStatistics {
        BatchNormStatistics(sums: BatchChunks.sum(partials.map(\.0)), squares: BatchChunks.sum(partials.map(\.1)),
                            count: count, epsilon: epsilon)
    }

    /// Per-channel Σx and Σx² of one chunk: Float sums over one image row at a time (they
    /// vectorise), Double across rows.
    public static func sumsAndSquares(_ x: FeatureMap) -> ([Double], [Double]) {
        let c = x.channels, rows = x.count * x.pixels, width = max(1, x.width)
        var sums = [Double](repeating: 0, count: c), squares = [Double](repeating: 0, count: c)
        let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
        defer { rowSums.deallocate() }
        x.values.withUnsafeBufferPointer { xb in
            sums.withUnsafeMutableBufferPointer { sb in
                squares.withUnsafeMutableBufferPointer { qb in
                    let xp = xb.baseAddress!, sp = sb.baseAddress!, qp = qb.baseAddress!
                    let t = rowSums, u = rowSums + c
                    var r = 0
                    while r < rows {
                        let end = min(rows, r + width)
                        for ch in 0..<c { t[ch] = 0; u[ch] = 0 }
                        for q in r..<end {
                            let row = xp + q * c
                            for ch in 0..<c {
                                let v = row[ch]
                                t[ch] += v
                                u[ch] += v * v
                            }
                        }
                        for ch in 0..<c {
                            sp[ch] += Double(t[ch])
                            qp[ch] += Double(u[ch])
                        }
                        r = end
                    }
                }
            }
        }
        return (sums, squares)
    }

    /// y = γ·(x − mean)·inverseStd + β (+ residual) (then ReLU), per channel. Eval mode is
    /// this with the running mean and 1/√(running variance + ε).
    public static func normalize(_ x: FeatureMap, mean: [Float], inverseStd: [Float], gamma: [Float], beta: [Float],
                                 residual: FeatureMap? = nil, relu: Bool) -> FeatureMap {
        let c = x.channels, rows = x.count * x.pixels
        kernelPrecondition(mean.count == c && inverseStd.count == c && gamma.count == c && beta.count == c,
                     "batch norm: \(c) channels, parameters for \(gamma.count)")
        if let residual { kernelPrecondition(residual.values.count == x.values.count, "residual: shapes disagree") }
        // y = x·scale + shift.
        let scale = (0..<c).map { gamma[$0] * inverseStd[$0] }
        let shift = (0..<c).map { beta[$0] - mean[$0] * gamma[$0] * inverseStd[$0] }
        var y = FeatureMap(uninitializedCount: x.count, height: x.height, width: x.width, channels: c)
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                scale.withUnsafeBufferPointer { ab in
                    shift.withUnsafeBufferPointer { bb in
                        let xp = xb.baseAddress!, yp = yb.baseAddress!, a = ab.baseAddress!, b = bb.baseAddress!
                        func run(_ rp: UnsafePointer<Float>?) {
                            for r in 0..<rows {
                                let xr = xp + r * c, yr = yp + r * c
                                if let rp {
                                    let rr = rp + r * c
                                    for ch in 0..<c { yr[ch] = xr[ch] * a[ch] + b[ch] + rr[ch] }
                                } else {
                                    for ch in 0..<c { yr[ch] = xr[ch] * a[ch] + b[ch] }
                                }
                                if relu { for ch in 0..<c { yr[ch] = max(0, yr[ch]) } }
                            }
                        }
                        if let residual {
                            residual.values.withUnsafeBufferPointer { run($0.baseAddress!) }
                        } else {
                            run(nil)
                        }
                    }
                }
            }
        }
        return y
    }

    /// Moves running statistics toward the batch's, PyTorch's rule: r ← (1 − m)·r + m·batch,
    /// with the unbiased batch variance.
    public static func updateRunning(mean: inout [Float], variance: inout [Float], with statistics: BatchNormStatistics,
                                     momentum: Float = 0.1) {
        let unbiased = statistics.unbiasedVariance
        for c in mean.indices {
            mean[c] = (1 - momentum) * mean[c] + momentum * statistics.mean[c]
            variance[c] = (1 - momentum) * variance[c] + momentum * unbiased[c]
        }
    }

    /// Training-mode backward over chunks. `dy` is dL/d(output of the normalisation) —
    /// when `reluOutput` is given (the forward ran ReLU right after), dy is first masked by
    /// reluOutput > 0. Returns dL/dx per chunk, dL/dγ and dL/dβ. (Layers run the two halves,
    /// `maskAndSum` and `inputGradient`, chunk by chunk with the kernels around them.)
    public static func backward(_ dy: [FeatureMap], x: [FeatureMap], reluOutput: [FeatureMap]? = nil, gamma: [Float],
                                statistics: BatchNormStatistics) -> (dx: [FeatureMap], gamma: [Float], beta: [Float]) {
        var masked = dy
        let partials = (0..<dy.count).map { i in maskAndSum(&masked[i], x: x[i], reluOutput: reluOutput?[i], statistics: statistics) }
        let sums = BatchNormGradientSums(partials: partials)
        let dx = (0..<dy.count).map { i in inputGradient(masked[i], x: x[i], gamma: gamma, statistics: statistics, sums: sums) }
        return (dx, sums.gamma, sums.beta)
    }

    /// The first half of the training backward, for one chunk: dy masked in place by
    /// reluOutput > 0 (when given: the ReLU that followed the normalisation, PyTorch's choice
    /// of 0 at 0), and the chunk's Σdy and Σdy·x̂ per channel. Summed over the chunks in
    /// order (`BatchNormGradientSums(partials:)`) they are dL/dβ and dL/dγ, which every
    /// chunk's `inputGradient` needs. Layers run it on each chunk of dy as soon as it is
    /// computed, while it is in cache.
    public static func maskAndSum(_ dy: inout FeatureMap, x: FeatureMap, reluOutput: FeatureMap?,
                                  statistics s: BatchNormStatistics) -> ([Double], [Double]) {
        let c = x.channels, rows = x.count * x.pixels
        kernelPrecondition(dy.values.count == x.values.count && reluOutput.map { $0.values.count == x.values.count } ?? true,
                           "batch norm gradient: shapes disagree")
        var sumDy = [Double](repeating: 0, count: c), sumDyXhat = [Double](repeating: 0, count: c)
        var rowDy = [Float](repeating: 0, count: c), rowDyX = [Float](repeating: 0, count: c)
        dy.values.withUnsafeMutableBufferPointer { db in
            x.values.withUnsafeBufferPointer { xb in
                s.mean.withUnsafeBufferPointer { mb in
                    let dp = db.baseAddress!, xp = xb.baseAddress!, mp = mb.baseAddress!
                    withMask(reluOutput) { mask in
                        rowDy.withUnsafeMutableBufferPointer { tb in
                            rowDyX.withUnsafeMutableBufferPointer { ub in
                                let t = tb.baseAddress!, u = ub.baseAddress!
                                // Float sums over one image row at a time, Double across rows.
                                let width = max(1, x.width)
                                var r = 0
                                while r < rows {
                                    let end = min(rows, r + width)
                                    for ch in 0..<c { t[ch] = 0; u[ch] = 0 }
                                    for q in r..<end {
                                        let dr = dp + q * c, xr = xp + q * c
                                        if let mask {
                                            // Masked in place first: a loop that only reads dy vectorises.
                                            let yr = mask + q * c
                                            for ch in 0..<c where !(yr[ch] > 0) { dr[ch] = 0 }
                                        }
                                        for ch in 0..<c {
                                            t[ch] += dr[ch]
                                            u[ch] += dr[ch] * (xr[ch] - mp[ch])
                                        }
                                    }
                                    for ch in 0..<c {
                                        sumDy[ch] += Double(t[ch])
                                        sumDyXhat[ch] += Double(u[ch])
                                    }
                                    r = end
                                }
                            }
                        }
                    }
                }
            }
        }
        for ch in 0..<c { sumDyXhat[ch] *= Double(s.inverseStd[ch]) }
        return (sumDy, sumDyXhat)
    }

    /// dx = γ·σ⁻¹·(dy − Σdy/n − x̂·Σ(dy·x̂)/n) for one chunk.
    /// `dy` is already masked by a ReLU that followed (`maskAndSum`).
    public static func inputGradient(_ dy: FeatureMap, x: FeatureMap, gamma: [Float],
                                     statistics s: BatchNormStatistics, sums: BatchNormGradientSums) -> FeatureMap {
        let sumDy = sums.sumDy, sumDyXhat = sums.sumDyXhat
        let c = x.channels, rows = x.count * x.pixels
        let n = Double(s.count)
        // dx = dy·a + (x − mean)·b + d per channel.
        var a = [Float](repeating: 0, count: c), b = a, d = a
        for ch in 0..<c {
            let inv = Double(s.inverseStd[ch]), g = Double(gamma[ch])
            let meanDy = sumDy[ch] / n, meanDyXhat = sumDyXhat[ch] / n
            a[ch] = Float(g * inv)
            b[ch] = Float(-g * inv * inv * meanDyXhat)
            d[ch] = Float(-g * inv * meanDy)
        }
        var dx = FeatureMap(uninitializedCount: x.count, height: x.height, width: x.width, channels: c)
        dy.values.withUnsafeBufferPointer { db in
            x.values.withUnsafeBufferPointer { xb in
                s.mean.withUnsafeBufferPointer { mb in
                dx.values.withUnsafeMutableBufferPointer { ob in
                    a.withUnsafeBufferPointer { ab in
                        b.withUnsafeBufferPointer { bb in
                            d.withUnsafeBufferPointer { cb in
                                let dp = db.baseAddress!, xp = xb.baseAddress!, op = ob.baseAddress!
                                let ap = ab.baseAddress!, bp = bb.baseAddress!, cp = cb.baseAddress!, mp = mb.baseAddress!
                                for r in 0..<rows {
                                    let dr = dp + r * c, xr = xp + r * c, or = op + r * c
                                    for ch in 0..<c { or[ch] = dr[ch] * ap[ch] + (xr[ch] - mp[ch]) * bp[ch] + cp[ch] }
                                }
                            }
                        }
                    }
                }
                }
            }
        }
        return dx
    }

    @inline(__always)
    static func withMask<R>(_ map: FeatureMap?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let map else { return body(nil) }
        return map.values.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

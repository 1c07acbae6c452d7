extension Attention {
    /// Backward of `apply`: given dy = dL/dy [N, H, W, C] and the forward's input qkv
    /// [N, H, W, 3C], dL/dqkv in qkv's layout ([dq (C) | dk (C) | dv (C)] per pixel, each
    /// split into `heads` blocks of C/heads channels).
    ///
    /// Recomputes the softmax from qkv (no forward state is kept). Per image and head, with
    /// Q, K, V the head's [HW, C/heads] blocks, scale = 1/√(C/heads), S = scale·Q·Kᵀ,
    /// P = softmax(S) by rows, O = P·V and dO the head's block of dy:
    ///
    ///     dV = Pᵀ·dO
    ///     dP = dO·Vᵀ
    ///     dS = P ⊙ (dP − rowsum(dP ⊙ P))
    ///     dQ = scale·dS·K
    ///     dK = scale·dSᵀ·Q
    public static func backward(_ dy: FeatureMap, qkv: FeatureMap, heads: Int) -> FeatureMap {
        Profiler.measure("attention-backward") { gradient(dy, qkv, heads: heads) }
    }

    static func gradient(_ dy: FeatureMap, _ qkv: FeatureMap, heads: Int) -> FeatureMap {
        let c = qkv.channels / 3, hw = qkv.pixels, ch = c / heads
        kernelPrecondition(heads > 0 && qkv.channels == 3 * c && c % heads == 0 && qkv.hasConsistentShape,
                           "attention gradient: \(qkv.channels) channels for \(heads) heads")
        kernelPrecondition(dy.count == qkv.count && dy.height == qkv.height && dy.width == qkv.width && dy.channels == c
                               && dy.hasConsistentShape,
                           "attention gradient: dy is \(dy.count)×\(dy.height)×\(dy.width)×\(dy.channels), "
                               + "qkv is \(qkv.count)×\(qkv.height)×\(qkv.width)×\(qkv.channels)")
        var dqkv = FeatureMap(uninitializedCount: qkv.count, height: qkv.height, width: qkv.width, channels: 3 * c)
        guard !qkv.values.isEmpty else { return dqkv }
        let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: hw * hw)
        let scoreGradient = UnsafeMutablePointer<Float>.allocate(capacity: hw * hw)
        defer {
            probabilities.deallocate()
            scoreGradient.deallocate()
        }
        let scale = 1 / Float(ch).squareRoot()
        qkv.values.withUnsafeBufferPointer { qb in
            dy.values.withUnsafeBufferPointer { yb in
                dqkv.values.withUnsafeMutableBufferPointer { gb in
                    for n in 0..<qkv.count {
                        let base = qb.baseAddress! + n * hw * 3 * c, gradientBase = gb.baseAddress! + n * hw * 3 * c
                        for h in 0..<heads {
                            let q = base + h * ch, k = base + c + h * ch, v = base + 2 * c + h * ch
                            let dq = gradientBase + h * ch, dk = gradientBase + c + h * ch, dv = gradientBase + 2 * c + h * ch
                            let dOut = yb.baseAddress! + n * hw * c + h * ch
                            // P = softmax(scale·Q·Kᵀ), as the forward computes it.
                            BLAS.sgemm(transposeB: true, m: hw, n: hw, k: ch, alpha: scale, a: q, lda: 3 * c, b: k, ldb: 3 * c,
                                       c: probabilities, ldc: hw)
                            softmaxRows(probabilities, rows: hw, columns: hw)
                            // dV = Pᵀ·dO.
                            BLAS.sgemm(transposeA: true, m: hw, n: ch, k: hw, a: probabilities, lda: hw, b: dOut, ldb: c,
                                       c: dv, ldc: 3 * c)
                            // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place.
                            BLAS.sgemm(transposeB: true, m: hw, n: hw, k: ch, a: dOut, lda: c, b: v, ldb: 3 * c,
                                       c: scoreGradient, ldc: hw)
                            softmaxBackwardRows(scoreGradient, probabilities: probabilities, rows: hw, columns: hw)
                            // dQ = scale·dS·K and dK = scale·dSᵀ·Q.
                            BLAS.sgemm(m: hw, n: ch, k: hw, alpha: scale, a: scoreGradient, lda: hw, b: k, ldb: 3 * c,
                                       c: dq, ldc: 3 * c)
                            BLAS.sgemm(transposeA: true, m: hw, n: ch, k: hw, alpha: scale, a: scoreGradient, lda: hw, b: q,
                                       ldb: 3 * c, c: dk, ldc: 3 * c)
                        }
                    }
                }
            }
        }
        return dqkv
    }

    /// Row-wise softmax backward in place: dP becomes dS = P ⊙ (dP − rowsum(dP ⊙ P)), the
    /// row sums in Double.
    static func softmaxBackwardRows(_ dp: UnsafeMutablePointer<Float>, probabilities p: UnsafePointer<Float>,
                                    rows: Int, columns: Int) {
        for r in 0..<rows {
            let gradientRow = dp + r * columns, row = p + r * columns
            var total: Double = 0
            for i in 0..<columns { total += Double(gradientRow[i]) * Double(row[i]) }
            let weighted = Float(total)
            for i in 0..<columns { gradientRow[i] = row[i] * (gradientRow[i] - weighted) }
        }
    }
}

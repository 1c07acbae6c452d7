/// Scaled dot-product self-attention over the pixels of each image.
public enum Attention {
    /// qkv: [N, H, W, 3C] laid out as [q (C) | k (C) | v (C)] per pixel, each split into
    /// `heads` contiguous blocks of C/heads channels. Returns [N, H, W, C]: per head,
    /// softmax(q·kᵀ/√(C/heads))·v.
    public static func apply(_ qkv: FeatureMap, heads: Int) -> FeatureMap {
        Profiler.measure("attention") { attend(qkv, heads: heads) }
    }

    static func attend(_ qkv: FeatureMap, heads: Int) -> FeatureMap {
        let c = qkv.channels / 3, hw = qkv.pixels, ch = c / heads
        kernelPrecondition(heads > 0 && qkv.channels == 3 * c && c % heads == 0 && qkv.hasConsistentShape,
                           "attention: \(qkv.channels) channels for \(heads) heads")
        var out = FeatureMap(uninitializedCount: qkv.count, height: qkv.height, width: qkv.width, channels: c)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: hw * hw)
        defer { scores.deallocate() }
        let scale = 1 / Float(ch).squareRoot()
        qkv.values.withUnsafeBufferPointer { qb in
            out.values.withUnsafeMutableBufferPointer { ob in
                for n in 0..<qkv.count {
                    let base = qb.baseAddress! + n * hw * 3 * c
                    for h in 0..<heads {
                        let q = base + h * ch, k = base + c + h * ch, v = base + 2 * c + h * ch
                        BLAS.sgemm(transposeB: true, m: hw, n: hw, k: ch, alpha: scale, a: q, lda: 3 * c, b: k, ldb: 3 * c,
                                   c: scores, ldc: hw)
                        softmaxRows(scores, rows: hw, columns: hw)
                        BLAS.sgemm(m: hw, n: ch, k: hw, a: scores, lda: hw, b: v, ldb: 3 * c,
                                   c: ob.baseAddress! + n * hw * c + h * ch, ldc: c)
                    }
                }
            }
        }
        return out
    }

    /// Row-wise softmax in place.
    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        for r in 0..<rows {
            let row = p + r * columns
            var maximum = -Float.infinity
            for i in 0..<columns { maximum = max(maximum, row[i]) }
            mapInPlace(row, columns) { VectorMath.exp($0 - maximum) }
            var total: Float = 0
            for i in 0..<columns { total += row[i] }
            let inverse = 1 / total
            for i in 0..<columns { row[i] *= inverse }
        }
    }
}

/// Backward pass of a fully connected layer y = x·Wᵀ + b on [rows, in] → [rows, out]
/// (`LinearWeights`, W in PyTorch's [out, in] layout).
public enum LinearGradient {
    /// dL/dx [rows, in] = dy·W.
    public static func input(_ dy: [Float], weight: [Float], rows: Int, inputs: Int, outputs: Int) -> [Float] {
        kernelPrecondition(dy.count == rows * outputs && weight.count == outputs * inputs, "linear gradient: shapes disagree")
        var dx = [Float](repeating: 0, count: rows * inputs)
        guard rows > 0 else { return dx }
        dy.withUnsafeBufferPointer { db in
            weight.withUnsafeBufferPointer { wb in
                dx.withUnsafeMutableBufferPointer { xb in
                    BLAS.sgemm(m: rows, n: inputs, k: outputs, a: db.baseAddress!, lda: outputs, b: wb.baseAddress!, ldb: inputs,
                               c: xb.baseAddress!, ldc: inputs)
                }
            }
        }
        return dx
    }

    /// dL/dW [out, in] = dyᵀ·x.
    public static func weight(_ x: [Float], _ dy: [Float], rows: Int, inputs: Int, outputs: Int) -> [Float] {
        kernelPrecondition(dy.count == rows * outputs && x.count == rows * inputs, "linear gradient: shapes disagree")
        var dw = [Float](repeating: 0, count: outputs * inputs)
        guard rows > 0 else { return dw }
        dy.withUnsafeBufferPointer { db in
            x.withUnsafeBufferPointer { xb in
                dw.withUnsafeMutableBufferPointer { wb in
                    BLAS.sgemm(transposeA: true, m: outputs, n: inputs, k: rows, a: db.baseAddress!, lda: outputs,
                               b: xb.baseAddress!, ldb: inputs, c: wb.baseAddress!, ldc: inputs)
                }
            }
        }
        return dw
    }

    /// dL/db [out] = Σ over rows of dy (in Double, row order).
    public static func bias(_ dy: [Float], rows: Int, outputs: Int) -> [Float] {
        kernelPrecondition(dy.count == rows * outputs, "linear gradient: shapes disagree")
        var sums = [Double](repeating: 0, count: outputs)
        for r in 0..<rows {
            for o in 0..<outputs { sums[o] += Double(dy[r * outputs + o]) }
        }
        return sums.map { Float($0) }
    }
}

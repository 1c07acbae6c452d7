import CDNNLKernels

/// The arithmetic a network is evaluated in (`--precision`).
public enum Precision: String, Sendable, CaseIterable {
    /// Single precision throughout: the default, and what the reference fixtures check.
    case fp32
    /// The matrix products of convolutions in bfloat16: weights stored and inputs rounded
    /// to bf16, sums accumulated and results kept in fp32, everything else (normalisation,
    /// activations, the sampler's state) in fp32 as before. On CPUs with AMX or AVX512-BF16
    /// the products run on oneDNN's bf16 kernels.
    case bf16
}

/// Weight matrices rounded to bfloat16 (the upper 16 bits of an IEEE single, nearest,
/// ties to even) and laid out as oneDNN's bf16 kernels read them, with the products on them.
public final class BFloat16Matrices: @unchecked Sendable {
    // Immutable after init; oneDNN only reads it.
    private let matrices: OpaquePointer
    /// Matrices, rows (inner dimension) and columns of each.
    public let batch: Int, rows: Int, columns: Int

    /// True when the CPU multiplies bf16 natively (AMX-BF16 or AVX512-BF16); elsewhere
    /// oneDNN falls back to slow reference kernels.
    public static var isNative: Bool {
        CPUFeatures.flags.contains("amx_bf16") || CPUFeatures.flags.contains("avx512_bf16")
    }

    /// `batch` matrices of rows × columns from `values`, dense fp32 [batch][rows][columns].
    public init(_ values: [Float], batch: Int, rows: Int, columns: Int) {
        kernelPrecondition(batch > 0 && rows > 0 && columns > 0 && values.count == batch * rows * columns,
                           "bf16 matrices: \(values.count) values for \(batch) × \(rows) × \(columns)")
        let made = values.withUnsafeBufferPointer { csm_bf16_matrices_create(batch, rows, columns, $0.baseAddress!) }
        guard let made else { fatalError("bf16 matrices \(batch) × \(rows) × \(columns): oneDNN could not lay them out (out of memory?)") }
        matrices = made
        self.batch = batch
        self.rows = rows
        self.columns = columns
    }

    deinit { csm_bf16_matrices_destroy(matrices) }

    /// C_i = A_i·W_i for each matrix W_i: A dense bf16 [batch][m][rows], C_i (m × columns)
    /// at c + i·batchStrideC with row stride ldc (dense is fastest). On the calling thread.
    func product(m: Int, a: UnsafePointer<UInt16>, c: UnsafeMutablePointer<Float>, ldc: Int, batchStrideC: Int) {
        Profiler.addFLOPs(2 * batch * m * rows * columns)
        let status = csm_bf16_gemm(m, a, matrices, c, ldc, batchStrideC)
        kernelPrecondition(status == 0, "bf16 product \(batch) × \(m) × \(rows) × \(columns): oneDNN status \(status)")
    }

    /// `values` rounded to the nearest bf16 (ties to even; subnormals to zero), as floats:
    /// what the products see of their inputs.
    public static func rounded(_ values: [Float]) -> [Float] {
        var bits = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { v in
            bits.withUnsafeMutableBufferPointer { round(v.baseAddress!, into: $0.baseAddress!, rows: 1, columns: values.count) }
        }
        return bits.map { Float(bitPattern: UInt32($0) << 16) }
    }

    /// Rounds a rows × columns block at `source` (rows `sourceStride` apart, default
    /// dense) to bf16 into `destination` (dense).
    @inline(__always)
    static func round(_ source: UnsafePointer<Float>, sourceStride: Int? = nil, into destination: UnsafeMutablePointer<UInt16>,
                      rows: Int, columns: Int) {
        csm_bf16_round_rows(source, sourceStride ?? columns, destination, columns, rows, columns)
    }
}

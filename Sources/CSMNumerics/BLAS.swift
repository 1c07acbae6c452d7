import CBLAS
import CDNNL
import Foundation

/// The bridge to the system BLAS (Debian's OpenBLAS).
///
/// On first use it makes sure OpenBLAS runs its AVX-512 kernels where the CPU has them:
/// OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (e.g. AMD Zen 4 and 5) and falls
/// back to its Haswell kernels, at half the speed; and those kernels round the rows of a
/// product differently depending on how many rows it has, while an image must come out the
/// same whatever batch it ran in. So whenever OpenBLAS picked a pre-AVX-512 family on a CPU
/// with AVX-512 — detected, or named by `OPENBLAS_CORETYPE` (some machine images set it to
/// Haswell) — csm re-runs OpenBLAS's core selection with `OPENBLAS_CORETYPE=SKYLAKEX`.
/// A user's choice of an AVX-512 family (SkylakeX, Cooperlake) is kept.
/// csm parallelises over the batch itself, so OpenBLAS runs one thread per call. GEMMs
/// with B untransposed whose inner and output dimensions are both at least `oneDNNFrom` go
/// to oneDNN's sgemm (also one thread per call), faster there on AVX-512 CPUs. (With B
/// transposed oneDNN's rounding depends on the number of rows, and an image must come out
/// the same whatever batch it ran in; the tests check both.)
public enum BLAS {
    private static let setUp: String = {
        let detected = String(cString: openblas_get_corename())
        let weak = ["haswell", "zen", "sandybridge", "prescott", "core2", "nehalem"]
        if weak.contains(detected.lowercased()), CPUFeatures.hasAVX512 {
            setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1)
            gotoblas_dynamic_quit()
            gotoblas_dynamic_init()
        }
        openblas_set_num_threads(1)
        return String(cString: openblas_get_corename())
    }()

    /// Inner and output dimensions from which GEMMs go to oneDNN's sgemm instead of
    /// OpenBLAS (`CSM_ONEDNN_FROM`; 0 sends every GEMM to OpenBLAS). Measured on one core at
    /// 96 rows: 256×256 oneDNN 154 GFLOP/s, OpenBLAS 84; 128×128 156 and 127; 64×64 100 and
    /// 114; 16×16 45 and 59.
    static let oneDNNFrom: Int = {
        if let text = ProcessInfo.processInfo.environment["CSM_ONEDNN_FROM"], let value = Int(text), value >= 0 {
            return value == 0 ? Int.max : value
        }
        return 128
    }()

    /// The OpenBLAS kernel family in use (e.g. "SkylakeX").
    public static var coreName: String { setUp }

    /// Row-major single-precision GEMM: C = alpha·op(A)·op(B) + beta·C, with op(A) of
    /// shape m×k and op(B) of shape k×n.
    @inline(__always)
    public static func sgemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = setUp
        Profiler.addFLOPs(2 * m * n * k)
        if !transposeB && min(n, k) >= oneDNNFrom {
            if m == 1 ? oneDNNSingleRow(transposeA: transposeA, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c)
                      : oneDNN(transposeA: transposeA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c,
                               ldc: ldc) { return }
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}

extension BLAS {
    /// oneDNN's sgemm (B untransposed) on the calling thread alone; false if it refused the call.
    static func oneDNN(transposeA: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        omp_set_num_threads(1)
        let (t, n8) = (Int8(UInt8(ascii: "T")), Int8(UInt8(ascii: "N")))
        return dnnl_sgemm(transposeA ? t : n8, n8, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb),
                          beta, c, Int64(ldc)) == dnnl_success
    }

    /// A one-row product through oneDNN as the first of two equal rows: oneDNN computes a
    /// single row by another path (matrix-vector) whose rounding differs from its rows in a
    /// larger product, and an image must come out the same whatever batch it ran in.
    static func oneDNNSingleRow(transposeA: Bool, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                                b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>) -> Bool {
        // op(A) is 1×k: a[i] untransposed, a[i·lda] transposed; stored again twice over.
        let rows = UnsafeMutablePointer<Float>.allocate(capacity: 2 * k), out = UnsafeMutablePointer<Float>.allocate(capacity: 2 * n)
        defer { rows.deallocate(); out.deallocate() }
        for i in 0..<k {
            let value = transposeA ? a[i * lda] : a[i]
            if transposeA { rows[2 * i] = value; rows[2 * i + 1] = value } else { rows[i] = value; rows[k + i] = value }
        }
        for j in 0..<n { out[j] = c[j]; out[n + j] = c[j] }
        guard oneDNN(transposeA: transposeA, m: 2, n: n, k: k, alpha: alpha, a: rows, lda: transposeA ? 2 : k,
                     b: b, ldb: ldb, beta: beta, c: out, ldc: n) else { return false }
        for j in 0..<n { c[j] = out[j] }
        return true
    }
}

/// What the CPU supports, read once from /proc/cpuinfo (Linux).
public enum CPUFeatures {
    /// The flags line of the first processor.
    public static let flags: Set<String> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }()

    /// AVX-512 F, CD, BW, DQ and VL: what OpenBLAS's SkylakeX kernels need.
    public static var hasAVX512: Bool {
        ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// The CPU's model name, for benchmark reports.
    public static let modelName: String = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return "unknown CPU"
    }()
}

/// Double precision, for the few places that need it (the attribution kernel's Gram matrix
/// and its inverse); OpenBLAS set up as for `sgemm`.
extension BLAS {
    /// Row-major C = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n.
    public static func dgemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Double = 1,
                             a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int, beta: Double = 0,
                             c: UnsafeMutablePointer<Double>, ldc: Int) {
        _ = setUp
        cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// The upper triangle of the row-major n×n C = alpha·op(A)·op(A)ᵀ + beta·C, where op(A) is
    /// A (n×k) or, with `transpose`, Aᵀ for A of k×n.
    public static func dsyrkUpper(transpose: Bool, n: Int, k: Int, alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
                                  beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        _ = setUp
        cblas_dsyrk(CblasRowMajor, CblasUpper, transpose ? CblasTrans : CblasNoTrans, blasint(n), blasint(k), alpha, a,
                    blasint(lda), beta, c, blasint(ldc))
    }

    /// Inverts the symmetric positive-definite row-major n×n `matrix` in place from its upper
    /// triangle (LAPACK's Cholesky dpotrf, then dpotri), filling both triangles. False, and
    /// `matrix` undefined, when it is not positive definite.
    public static func invertPositiveDefinite(_ matrix: inout [Double], n: Int) -> Bool {
        _ = setUp
        // Row-major upper = column-major lower.
        var order = Int32(n), info: Int32 = 0
        let lower = Int8(UInt8(ascii: "L"))
        dpotrf_([lower], &order, &matrix, &order, &info)
        guard info == 0 else { return false }
        dpotri_([lower], &order, &matrix, &order, &info)
        guard info == 0 else { return false }
        for i in 0..<n {
            for j in 0..<i { matrix[i * n + j] = matrix[j * n + i] }
        }
        return true
    }
}

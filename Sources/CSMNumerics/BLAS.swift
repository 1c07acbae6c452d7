import CBLAS
import Foundation

/// The bridge to the system BLAS (Debian's OpenBLAS).
///
/// On first use it makes sure OpenBLAS runs its AVX-512 kernels where the CPU has them:
/// OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (e.g. AMD Zen 4) and falls back
/// to its Haswell kernels, at half the speed. Unless the user set `OPENBLAS_CORETYPE`
/// themselves, csm re-runs OpenBLAS's core detection with `OPENBLAS_CORETYPE=SKYLAKEX`.
/// csm parallelises over the batch itself, so OpenBLAS runs one thread per call.
public enum BLAS {
    private static let setUp: String = {
        let detected = String(cString: openblas_get_corename())
        let weak = ["haswell", "zen", "sandybridge", "prescott", "core2", "nehalem"]
        if getenv("OPENBLAS_CORETYPE") == nil, weak.contains(detected.lowercased()), CPUFeatures.hasAVX512 {
            setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1)
            gotoblas_dynamic_quit()
            gotoblas_dynamic_init()
        }
        openblas_set_num_threads(1)
        return String(cString: openblas_get_corename())
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
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
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

#if canImport(Glibc)
import Glibc
#endif

/// Keeps freed memory inside the process for the next allocation of the same size.
///
/// A training step allocates and frees the same large activation and gradient buffers every
/// step. By default glibc returns blocks above its mmap threshold (and the top of the heap
/// above its trim threshold) to the kernel on free, so every step pays hundreds of
/// thousands of page faults to get them back; raising both thresholds once makes those
/// buffers come back from malloc's free lists instead. No effect off glibc.
public enum MemoryReuse {
    /// Applies the setting (once; later calls do nothing).
    public static func enable() { _ = applied }

    private static let applied: Bool = {
        #if canImport(Glibc)
        // glibc accepts mmap thresholds up to 32 MiB on 64-bit systems; larger blocks still get
        // their own mapping.
        let mmap = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 32 << 20)
        let trim = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, Int32.max)
        return mmap == 1 && trim == 1
        #else
        return false
        #endif
    }()
}

#if canImport(Glibc)
/// glibc's `int mallopt(int param, int value)` (malloc.h, which the Glibc module leaves out).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

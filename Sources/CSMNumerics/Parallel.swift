import Dispatch
import Foundation

/// Work splitting over the machine's cores.
public enum Parallel {
    /// Worker count: `CSM_THREADS` if set, else the number of active cores.
    public static let workerCount: Int = {
        if let text = ProcessInfo.processInfo.environment["CSM_THREADS"], let n = Int(text), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for i in 0..<count on at most `workers` threads at once: in turn on the
    /// calling thread when that is 1, otherwise concurrently. Dispatch alone would spread the
    /// indices over every core the process may use, so `CSM_THREADS` below that is kept by
    /// giving each of `workers` tasks every `workers`-th index.
    public static func forEach(_ count: Int, workers: Int = workerCount, _ body: (Int) -> Void) {
        let workers = min(count, max(1, workers))
        if workers <= 1 {
            for i in 0..<count { body(i) }
        } else if workers == count || workers >= ProcessInfo.processInfo.activeProcessorCount {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        } else {
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for i in stride(from: w, to: count, by: workers) { body(i) }
            }
        }
    }

    /// Splits 0..<total into at most `parts` contiguous, nearly equal, non-empty ranges.
    public static func ranges(_ total: Int, parts: Int = workerCount) -> [Range<Int>] {
        let parts = max(1, min(parts, total))
        guard total > 0 else { return [] }
        return (0..<parts).map { p in (total * p / parts)..<(total * (p + 1) / parts) }
    }
}

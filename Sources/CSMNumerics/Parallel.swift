import Dispatch
import Foundation

/// Work splitting over the machine's cores.
public enum Parallel {
    /// Worker count: `CSM_THREADS` if set, else the number of active cores.
    public static let workerCount: Int = {
        if let text = ProcessInfo.processInfo.environment["CSM_THREADS"], let n = Int(text), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for i in 0..<count, concurrently when count > 1.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 {
            if count == 1 { body(0) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }

    /// Splits 0..<total into at most `parts` contiguous, nearly equal, non-empty ranges.
    public static func ranges(_ total: Int, parts: Int = workerCount) -> [Range<Int>] {
        let parts = max(1, min(parts, total))
        guard total > 0 else { return [] }
        return (0..<parts).map { p in (total * p / parts)..<(total * (p + 1) / parts) }
    }
}

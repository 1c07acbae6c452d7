import Foundation

/// Per-kernel wall-clock accounting, on when `CSM_PROFILE=1` (or `enabled` is set).
/// With several workers the figures add up across threads (CPU-seconds per kernel).
public enum Profiler {
    nonisolated(unsafe) public static var enabled = ProcessInfo.processInfo.environment["CSM_PROFILE"] == "1"
    private static let lock = NSLock()
    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int)] = [:]

    /// Runs `body`, charging its time to `name` when profiling is on.
    @inline(__always)
    public static func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        lock.lock()
        let previous = totals[name] ?? (0, 0)
        totals[name] = (previous.seconds + seconds, previous.calls + 1)
        lock.unlock()
        return result
    }

    /// The table so far, largest first: name, seconds, calls.
    public static func report() -> [(name: String, seconds: Double, calls: Int)] {
        lock.lock()
        defer { lock.unlock() }
        return totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.seconds > $1.seconds }
    }

    nonisolated(unsafe) private static var countingFLOPs = false
    nonisolated(unsafe) private static var flops = 0

    /// Adds `count` floating-point operations to the running tally (only inside `countFLOPs`).
    @inline(__always)
    public static func addFLOPs(_ count: Int) {
        guard countingFLOPs else { return }
        lock.lock()
        flops += count
        lock.unlock()
    }

    /// The floating-point operations of the matrix products `body` performs (2 per
    /// multiply-add). Not reentrant: run nothing else numeric meanwhile.
    public static func countFLOPs(_ body: () -> Void) -> Int {
        lock.lock()
        flops = 0
        countingFLOPs = true
        lock.unlock()
        body()
        lock.lock()
        countingFLOPs = false
        let result = flops
        lock.unlock()
        return result
    }

    /// Runs `body` without adding its matrix products to the FLOP tally (for kernels that
    /// count their nominal FLOPs themselves).
    public static func withoutFLOPCounting<T>(_ body: () -> T) -> T {
        guard countingFLOPs else { return body() }
        countingFLOPs = false
        defer { countingFLOPs = true }
        return body()
    }

    /// Clears the table.
    public static func reset() {
        lock.lock()
        totals = [:]
        lock.unlock()
    }
}

import CSMNumerics
import Foundation

/// Progress on stderr: a live bar with rate and ETA on a terminal, a plain line every
/// few seconds otherwise (logs, CI).
final class ProgressReporter {
    let label: String
    let total: Int
    let unit: String
    /// When the work began: the rate and ETA count from here.
    let start: Date
    private var lastPrint = Date.distantPast
    private var done = 0
    private var finished = false
    private let interactive = isatty(STDERR_FILENO) != 0
    private let lock = NSLock()

    /// `start` is when the work began, if before the reporter was made (a training epoch
    /// whose first progress comes after its first step).
    init(_ label: String, total: Int, unit: String, start: Date = Date()) {
        self.label = label
        self.start = start
        self.total = max(1, total)
        self.unit = unit
    }

    /// Reports one more unit done; callable from any thread.
    func advance() {
        lock.lock()
        done += 1
        let count = done
        lock.unlock()
        update(count)
    }

    /// Reports `done` of `total` units, with `detail` (e.g. the current loss) after the rate.
    func update(_ done: Int, detail: String = "") {
        lock.lock()
        defer { lock.unlock() }
        self.done = max(self.done, done)
        let now = Date()
        let interval = interactive ? 0.1 : 5
        guard !finished, now.timeIntervalSince(lastPrint) >= interval || done >= total else { return }
        lastPrint = now
        finished = done >= total
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let fraction = Double(done) / Double(total)
        let stats = String(format: "%d/%d %@  %.1f %@/s  ETA %@", done, total, unit, rate, unit, Self.duration(eta))
            + (detail.isEmpty ? "" : "  " + detail)
        if interactive {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(label) \(bar) \(stats)\u{1B}[K".utf8))
            if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            FileHandle.standardError.write(Data("\(label): \(String(format: "%3.0f%%", fraction * 100)) \(stats)\n".utf8))
        }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

/// Writes one line to stderr.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Peak resident memory of this process in MiB (Linux: VmHWM).
func peakMemoryMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return digits / 1024
    }
    return 0
}

/// `text` padded with spaces to `width` characters (String(format:) does not pad %@ on Linux).
func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// The per-kernel profile (`Profiler.report`) on stderr, largest first.
func printProfile() {
    for row in Profiler.report() {
        printError("  " + padded(row.name, 18) + String(format: " %8.3f s  %7d calls", row.seconds, row.calls))
    }
}

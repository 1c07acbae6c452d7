import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// SIGINT and SIGTERM as a request to stop at the next safe point instead of dying
/// mid-write. Slurm's time limit, `scancel`, a Kubernetes eviction and Ctrl-C all send one of
/// them (Slurm and Kubernetes then SIGKILL after a grace period). Long jobs call `install()`
/// once and `check()` between units of work they can abandon or finish cleanly (a sampling
/// batch, a training step, an attribution chunk): what is finished stays, the unit in
/// flight is dropped, and the rerun of the same command resumes with the same bytes as an
/// uninterrupted run. A second signal stops the process at once.
public enum Interruption {
    private static let received = Atomic<Int32>(0)
    private static let sources = Mutex<[DispatchSourceSignal]>([])

    /// Catches SIGINT and SIGTERM from now on (idempotent).
    public static func install() {
        sources.withLock { sources in
            guard sources.isEmpty else { return }
            for number in [SIGINT, SIGTERM] {
                Glibc.signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    let (exchanged, _) = received.compareExchange(expected: 0, desired: number, ordering: .relaxed)
                    if !exchanged { _exit(128 + number) }   // the second signal: stop now
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    /// The signal received, if any.
    public static var signal: Int32? {
        let number = received.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// Throws `Interrupted` once a signal has been received.
    public static func check() throws {
        if let signal { throw Interrupted(signal: signal) }
    }
}

/// The run was asked to stop (SIGINT or SIGTERM) and stopped at a safe point.
public struct Interrupted: Error, CustomStringConvertible, Sendable {
    /// SIGINT or SIGTERM.
    public let signal: Int32

    public init(signal: Int32) { self.signal = signal }

    /// The signal's name.
    public var name: String { signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)" }

    /// The exit status a shell gives a process killed by the signal (130, 143).
    public var exitStatus: Int32 { 128 + signal }

    public var description: String { "stopped by \(name)" }
}

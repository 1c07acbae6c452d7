import ArgumentParser
import CSMFormats

/// Runs a long job with SIGINT and SIGTERM caught (`Interruption`): a stop request ends it
/// at the job's next safe point with one line saying what was kept and how to resume, and
/// the exit status a shell gives the signal (130 for SIGINT, 143 for SIGTERM).
func stoppable(_ command: String, resume: @autoclosure () -> String, _ body: () throws -> Void) throws {
    Interruption.install()
    do {
        try body()
    } catch let stop as Interrupted {
        printError("\(command): \(stop); \(resume())")
        throw ExitCode(stop.exitStatus)
    }
}

import Foundation
import XCTest
import CSMNumerics

/// `Parallel.forEach` visits every index once and never runs more than its worker count at
/// once (`CSM_THREADS`), whatever the number of cores.
final class ParallelTests: XCTestCase {
    /// The most bodies seen running at once, and how often each index ran.
    private func run(count: Int, workers: Int) -> (peak: Int, visits: [Int]) {
        let lock = NSLock()
        var running = 0, peak = 0
        var visits = [Int](repeating: 0, count: count)
        Parallel.forEach(count, workers: workers) { i in
            lock.lock()
            running += 1
            peak = max(peak, running)
            visits[i] += 1
            lock.unlock()
            usleep(2_000)  // long enough for another worker to start beside this one
            lock.lock()
            running -= 1
            lock.unlock()
        }
        return (peak, visits)
    }

    func testOneWorkerRunsInTurnOnTheCallingThread() {
        let (peak, visits) = run(count: 8, workers: 1)
        XCTAssertEqual(peak, 1)
        XCTAssertEqual(visits, [Int](repeating: 1, count: 8))
    }

    func testWorkerCountCapsConcurrency() {
        for workers in [2, 3] {
            let (peak, visits) = run(count: 11, workers: workers)
            XCTAssertLessThanOrEqual(peak, workers, "workers \(workers)")
            XCTAssertEqual(visits, [Int](repeating: 1, count: 11), "workers \(workers)")
        }
    }

    func testEmptyAndSingleRanges() {
        XCTAssertEqual(run(count: 0, workers: 4).visits, [])
        XCTAssertEqual(run(count: 1, workers: 4).visits, [1])
    }
}

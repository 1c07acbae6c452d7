import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// Training throughput of ResNet-20 on 28×28×1 batches of 128 (forward + backward), printed
/// when `CSM_BENCH=1`; skipped otherwise (timings are not tests). With `CSM_PROFILE=1` it
/// also prints the per-kernel table.
final class TrainableResNetBenchmark: XCTestCase {
    func testResNet20TrainingThroughput() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["CSM_BENCH"] == "1", "set CSM_BENCH=1 to time training")
        let architecture = ResNetArchitecture(block: .basic, layers: [3, 3, 3], widths: [16, 32, 64], stem: .cifar, inputChannels: 1, numClasses: 10)
        let input = ResNetInput(height: 28, width: 28, channels: 1, scale: 1 / 255, mean: [0.286], std: [0.353])
        let network = TrainableResNet(architecture: architecture, input: input, classNames: (0..<10).map { "\($0)" }, seed: 0)
        let batch = 128
        var state: UInt64 = 1
        let values = (0..<(batch * 28 * 28)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
        let x = FeatureMap(count: batch, height: 28, width: 28, channels: 1, values: values)
        let gradient = [Float](repeating: 1 / Float(batch * 10), count: batch * 10)
        func step() {
            for parameter in network.parameters { parameter.zeroGradient() }
            _ = network.forwardTraining(x)
            network.backward(gradient)
        }
        step()
        Profiler.reset()
        let repeats = Int(ProcessInfo.processInfo.environment["CSM_BENCH_REPEATS"] ?? "") ?? 5
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            step()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let best = times.min() ?? 0, median = times.sorted()[times.count / 2]
        print(String(format: "ResNet-20 train step, batch %d, %d threads: best %.4f s (%.0f images/s), median %.4f s (%.0f images/s)",
                     batch, Parallel.workerCount, best, Double(batch) / best, median, Double(batch) / median))
        // A digest of every gradient bit, to compare runs with different CSM_THREADS.
        var digest: UInt64 = 1469598103934665603
        for parameter in network.parameters {
            for value in parameter.gradient { digest = (digest ^ UInt64(value.bitPattern)) &* 1099511628211 }
        }
        print(String(format: "  gradient digest %016llx", digest))
        for row in Profiler.report() { print(String(format: "  %-16@ %8.4f s  %5d calls", row.name as NSString, row.seconds, row.calls)) }
    }
}

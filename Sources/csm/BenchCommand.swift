import ArgumentParser
import CSMNumerics
import Foundation

/// `csm bench-kernels`: times csm's kernels at the default model's shapes (best of
/// several runs), for `make bench` and for anyone tuning them.
struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernels",
        abstract: "Time the numeric kernels at the default model's shapes (one core).")

    @Option(help: "Images per call.")
    var batch: Int = 32
    @Option(help: "Runs per kernel; the best is reported.")
    var repeats: Int = 5

    func run() {
        print("BLAS: OpenBLAS \(BLAS.coreName) kernels on \(CPUFeatures.modelName)")
        print(padded("kernel", 26) + " " + padded("shape", 20) + "  ms/call   GFLOP/s")
        for (size, cin, cout) in [(28, 32, 32), (14, 64, 64), (7, 64, 64), (28, 96, 32), (14, 128, 64)] {
            let x = FeatureMap(count: batch, height: size, width: size, channels: cin,
                               values: (0..<(batch * size * size * cin)).map { Float($0 % 13) / 13 - 0.5 })
            let weight = (0..<(cout * cin * 9)).map { Float($0 % 7) / 70 - 0.05 }
            let flops = 2.0 * Double(batch * size * size * cin * cout * 9)
            let direct = ConvolutionWeights(pytorch: weight, bias: nil, outputChannels: cout, inputChannels: cin, kernel: 3)
            let winograd2 = WinogradWeights(pytorch: weight, bias: nil, outputChannels: cout, inputChannels: cin, tile: 2)
            let winograd4 = WinogradWeights(pytorch: weight, bias: nil, outputChannels: cout, inputChannels: cin, tile: 4)
            report("conv3x3 im2col+GEMM", "\(size)x\(size) \(cin)->\(cout)", flops) { _ = Convolution.apply(x, direct, padding: 1) }
            report("conv3x3 Winograd F(2,3)", "\(size)x\(size) \(cin)->\(cout)", flops) { _ = Winograd.apply(x, winograd2) }
            report("conv3x3 Winograd F(4,3)", "\(size)x\(size) \(cin)->\(cout)", flops) { _ = Winograd.apply(x, winograd4) }
            let norm = GroupNormWeights(gamma: [Float](repeating: 1, count: cin), beta: [Float](repeating: 0, count: cin),
                                        groups: min(32, cin / 4), epsilon: 1e-6)
            report("groupnorm+silu", "\(size)x\(size) \(cin)", 0) { _ = GroupNorm.apply(x, norm, silu: true) }
        }
    }

    private func report(_ name: String, _ shape: String, _ flops: Double, _ body: () -> Void) {
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let rate = flops > 0 ? String(format: "%9.1f", flops / best / 1e9) : "        -"
        print(padded(name, 26) + " " + padded(shape, 20) + String(format: " %8.2f %@", best * 1000, rate))
    }
}

import ArgumentParser
import CSMFormats
import CSMLoader
import CSMNumerics
import CSMShards
import Foundation

/// `csm bench-kernels`: times csm's kernels at the default model's shapes (best of
/// several runs), for `make bench` and for anyone tuning them.
struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernels",
        abstract: "Time the numeric kernels at the default model's shapes (one core).",
        discussion: """
            Prints, for each 3×3 convolution shape of the shipped Fashion-MNIST model, the best \
            milliseconds per call and GFLOP/s of im2col + GEMM and of Winograd F(2,3) and F(4,3), \
            and the group norm + SiLU time (docs/performance.md).

            Examples:
              csm bench-kernels
              csm bench-kernels --batch 8 --repeats 3
            """)

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

/// `csm bench-loader`: the Swift loader's throughput on a shard set (warm cache).
struct BenchLoaderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-loader",
        abstract: "Time the loader: batches of crop + flip + normalise from shards already in memory.",
        discussion: """
            Reads the shards into memory and loads one warm-up epoch, then times --epochs epochs \
            of shuffled batches (random crop with padding 2, horizontal flip, normalisation) and \
            prints images per second.

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm bench-loader data/real-train --epochs 2 --threads 2
            """)

    @Argument(help: "Shards: a manifest, a directory with one, or a .h5 file.")
    var data: String
    @Option(help: "Batch size.")
    var batchSize: Int = 128
    @Option(help: "Epochs to time.")
    var epochs: Int = 5
    @Option(help: "Loader threads.")
    var threads: Int = 2
    @Flag(help: "Print one JSON line.")
    var json = false

    func run() throws {
        let set = try ShardSet(path: data)
        try set.loadAllImages()
        let options = LoaderOptions(batchSize: batchSize, seed: 0,
                                    transform: .training(mean: [Float](repeating: 0.5, count: set.channels),
                                                         std: [Float](repeating: 0.25, count: set.channels), cropPadding: 2),
                                    prefetch: 2 * threads, threads: threads)
        let loader = BatchLoader(set, options: options)
        let warmUp = loader.epoch(0)
        while try warmUp.next() != nil {}
        var images = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for epoch in 1...max(1, epochs) {
            let batches = loader.epoch(epoch)
            while let batch = try batches.next() { images += batch.count }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if json {
            let record: JSONValue = .object([
                "images_per_s": .double(Double(images) / seconds), "images": .int(Int64(images)), "seconds": .double(seconds),
                "batch": .int(Int64(batchSize)), "threads": .int(Int64(threads)),
            ])
            print(record.jsonText)
        } else {
            print(String(format: "%d images in %.3f s: %.0f images/s (batch %d, %d threads, crop + flip + normalise)",
                         images, seconds, Double(images) / seconds, batchSize, threads))
        }
    }
}

import ArgumentParser
import CSMDiffusion
import CSMFormats
import CSMModels
import CSMNumerics
import CSMPictures
import CSMPipeline
import CSMRandom
import Foundation

/// `csm sample`: run an EDM model through EDM's sampler.
struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Sample images from an EDM diffusion model, with one-hot or mixed class labels.",
        discussion: """
            Either give the noise and class vectors as files (--latents, --labels), or seeds and \
            a class. A seed's latent is csm's counter-based Gaussian stream (Philox-4x32-10, \
            Box–Muller) for that seed: the same on every machine and batch size.

            Examples:
              csm sample --seeds 0-7 --class Sneaker --png out/
              csm sample --seeds 0-63 --mix Sneaker:"Ankle boot":0.7 --grid mix.png
              csm sample --seeds 0-7 --trajectory Sneaker:"Ankle boot" --grid traj.png
              csm sample --seeds 0-7 --class Sneaker --out z.safetensors
              csm sample --latents z.safetensors --labels z.safetensors --out x.safetensors
              csm sample --steps 1 --sigma-max 2 --latents z.safetensors \\
                  --labels z.safetensors --out denoised.safetensors
            """)

    @Option(help: "edm-diffusion/1 model file (default: the shipped Fashion-MNIST model).")
    var model: String?
    @Option(help: "safetensors file with tensor 'latents', float32 [N,C,H,W] (unit-variance noise).")
    var latents: String?
    @Option(help: "safetensors file with tensor 'class_labels', float32 [N,K].")
    var labels: String?
    @Option(help: "Seeds, e.g. 0-63 or 1,5,9-12 (instead of --latents).")
    var seeds: String?
    @Option(name: .customLong("class"), help: "Class (index or name) for every seed.")
    var classSpec: String?
    @Option(help: "Mixed class A:B:λ — λ on class A and 1−λ on class B (names or indices).")
    var mix: String?
    @Option(help: "Class-mixing trajectory A:B: every seed is sampled at λ = linspace(0, 1, --lambdas), λ on class A, sharing its latent (a grid row per seed).")
    var trajectory: String?
    @Option(help: "Trajectory length L (with --trajectory).")
    var lambdas: Int = 8
    @OptionGroup var sampler: SamplerOptions
    @Option(help: "Images per network batch.")
    var batch: Int = 64
    @Option(help: "Write tensor 'images' (float32 [N,C,H,W], unclipped) with 'latents' and 'class_labels' here.")
    var out: String?
    @Option(help: "Write one PNG per image into this directory.")
    var png: String?
    @Option(help: "Write all images as one contact-sheet PNG.")
    var grid: String?
    @Flag(help: "Print a per-kernel time profile at the end.")
    var profile = false
    @Flag(help: "Print a machine-readable summary line (JSON) on stdout.")
    var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if latents != nil && seeds != nil { throw ValidationError("give either --latents or --seeds, not both") }
        if latents == nil && seeds == nil { throw ValidationError("give --latents FILE or --seeds LIST") }
        if [classSpec, mix, trajectory, labels].compactMap({ $0 }).count > 1 {
            throw ValidationError("give only one of --class, --mix, --trajectory and --labels")
        }
        if trajectory != nil && seeds == nil { throw ValidationError("--trajectory needs --seeds") }
        guard lambdas >= 2 && lambdas <= 1000 else { throw ValidationError("--lambdas must be between 2 and 1000") }
        if out == nil && png == nil && grid == nil && !json { throw ValidationError("nothing to write: give --out, --png or --grid") }
    }

    func run() throws {
        try sample()
    }

    private func sample() throws {
        let modelPath = try model ?? DefaultFiles.locate(DefaultFiles.diffusionModel)
        sampler.warnAboutPrecision()
        let net = try EDMModel(path: modelPath, precision: sampler.precision)
        let c = net.channels, h = net.resolution, w = net.resolution, k = net.labelDimension

        // Noise.
        var noise: FeatureMap
        var churnSeeds: [UInt64]
        if let latents {
            let file = try SafeTensorsFile(path: latents)
            let shape = try file.shape(of: "latents")
            guard shape.count == 4, shape[1] == c, shape[2] == h, shape[3] == w, shape[0] > 0 else {
                throw CLIError("\(latents): tensor 'latents' has shape \(shape), the model needs [N, \(c), \(h), \(w)]")
            }
            noise = FeatureMap(nchw: try file.finiteFloats("latents"), count: shape[0], channels: c, height: h, width: w)
            churnSeeds = (0..<UInt64(shape[0])).map { $0 }
        } else {
            let seedList = try parseSeeds(seeds ?? "")
            let repeats = trajectory == nil ? 1 : lambdas
            churnSeeds = seedList.flatMap { [UInt64](repeating: $0, count: repeats) }
            noise = FeatureMap(nchw: TrajectoryInputs.latents(seeds: seedList, size: c * h * w, repeats: repeats), count: churnSeeds.count,
                               channels: c, height: h, width: w)
        }
        let n = noise.count

        // Class vectors.
        let trajectoryPair = try trajectory.map { try ClassPair.parseOne($0, classNames: net.classNames, classCount: k) }
        var classes = [Float](repeating: 0, count: n * k)
        if let labels {
            let file = try SafeTensorsFile(path: labels)
            let shape = try file.shape(of: "class_labels")
            guard shape == [n, k] else {
                throw CLIError("\(labels): tensor 'class_labels' has shape \(shape), expected [\(n), \(k)]")
            }
            classes = try file.finiteFloats("class_labels")
        } else if let trajectoryPair, k > 0 {
            for i in 0..<n {
                let vector = TrajectoryInputs.classVector(trajectoryPair, lambda: TrajectoryInputs.lambda(i % lambdas, length: lambdas), classCount: k)
                classes.replaceSubrange((i * k)..<((i + 1) * k), with: vector)
            }
        } else if k > 0 {
            var vector = [Float](repeating: 0, count: k)
            if let mix {
                let parts = mix.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 3, let lambda = Float(parts[2]), lambda >= 0, lambda <= 1 else {
                    throw ValidationError("--mix '\(mix)': expected A:B:λ with 0 ≤ λ ≤ 1, e.g. 7:9:0.7")
                }
                let a = try ClassPair.classIndex(parts[0], classNames: net.classNames, classCount: k)
                let b = try ClassPair.classIndex(parts[1], classNames: net.classNames, classCount: k)
                vector[a] += lambda
                vector[b] += 1 - lambda
            } else if let classSpec {
                vector[try ClassPair.classIndex(classSpec, classNames: net.classNames, classCount: k)] = 1
            } else {
                throw ValidationError("the model is class-conditional: give --class, --mix or --labels")
            }
            for i in 0..<n { for j in 0..<k { classes[i * k + j] = vector[j] } }
        }

        // Sampling, batch by batch.
        Profiler.enabled = Profiler.enabled || profile
        let sampler = EDMSampler(model: net, settings: sampler.settings)
        let evaluations = sampler.settings.evaluationsPerImage
        let progress = ProgressReporter("sampling", total: n, unit: "images")
        let started = Date()
        var outputs: [FeatureMap] = []
        var start = 0
        while start < n {
            let end = min(n, start + batch)
            let chunk = noise.slice(start..<end)
            let done = start
            let result: FeatureMap
            do {
                result = try sampler.sample(latents: chunk, classLabels: Array(classes[(start * k)..<(end * k)]),
                                            churnSeeds: Array(churnSeeds[start..<end])) { step, total in
                    progress.update(done + (end - done) * step / total)
                }
            } catch let failure as NonFiniteSample {
                let i = start + failure.image
                let which = seeds != nil ? "image \(i) (seed \(churnSeeds[i]))" : "image \(i)"
                throw CLIError("\(modelPath): \(which): \(failure); nothing was written (a model with extreme weights, or latents too large)")
            }
            outputs.append(result)
            start = end
        }
        let seconds = Date().timeIntervalSince(started)
        let images = FeatureMap.joined(outputs)

        if let out {
            try SafeTensorsWriter.write(
                [.init(name: "images", shape: [n, c, h, w], values: images.nchw),
                 .init(name: "latents", shape: [n, c, h, w], values: noise.nchw),
                 .init(name: "class_labels", shape: [n, k], values: classes)],
                metadata: ["model": (modelPath as NSString).lastPathComponent, "sampler": describe(sampler.settings),
                           "precision": net.precision.rawValue],
                to: out)
        }
        let pixels = try quantise(images)
        if let png {
            try FileManager.default.createDirectory(atPath: png, withIntermediateDirectories: true)
            for i in 0..<n {
                var name = seeds != nil ? String(format: "seed%06llu", churnSeeds[i]) : String(format: "%06d", i)
                if trajectory != nil { name += String(format: "-lambda%.3f", Double(i % lambdas) / Double(lambdas - 1)) }
                name += ".png"
                try pixels[i].writePNG(path: (png as NSString).appendingPathComponent(name))
            }
        }
        if let grid {
            if trajectory != nil {
                let names = net.classNames
                let (a, b) = (trajectoryPair?.a ?? 0, trajectoryPair?.b ?? 0)
                let nameA = names?[a] ?? "class \(a)", nameB = names?[b] ?? "class \(b)"
                let seedList = stride(from: 0, to: n, by: lambdas).map { churnSeeds[$0] }
                try ContactSheet(images: pixels, columns: lambdas,
                                 title: "\(nameA) <- \(nameB)",
                                 columnLabels: (0..<lambdas).map { String(format: "λ=%.2f", Double($0) / Double(lambdas - 1)) },
                                 rowLabels: seedList.map { "seed \($0)" }, scale: 2).writePNG(path: grid)
            } else {
                let columns = min(n, max(1, Int(Double(n).squareRoot().rounded(.up))))
                try RasterImage.grid(pixels, columns: columns, padding: 2, scale: 2).writePNG(path: grid)
            }
        }

        let rate = Double(n) / seconds
        let gflop = net.measureFLOPsPerImage() / 1e9 * Double(evaluations * n) / seconds
        printError(String(format: "sampled %d images in %.2f s: %.2f images/s, %d network evaluations each (%.0f GFLOP/s), peak memory %.0f MiB",
                          n, seconds, rate, evaluations, gflop, peakMemoryMiB()))
        if profile { printProfile() }
        if json {
            let record: JSONValue = .object([
                "images": .int(Int64(n)), "seconds": .double(seconds), "images_per_s": .double(rate),
                "evaluations_per_image": .int(Int64(evaluations)), "gflop_per_s": .double(gflop),
                "peak_rss_mib": .double(peakMemoryMiB()), "threads": .int(Int64(Parallel.workerCount)),
                "blas_core": .string(BLAS.coreName),
            ])
            print(record.jsonText)
        }
    }

    private func describe(_ s: SamplerSettings) -> String {
        let data = (try? JSONEncoder().encode(s)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// EDM's convention: uint8 = truncate(clip(x·127.5 + 128, 0, 255)), one image each.
    private func quantise(_ images: FeatureMap) throws -> [RasterImage] {
        let per = images.pixels * images.channels
        return try (0..<images.count).map { i in
            let bytes = PixelQuantization.uint8(images.values[(i * per)..<((i + 1) * per)])
            return try RasterImage(width: images.width, height: images.height, channels: images.channels, pixels: bytes)
        }
    }
}


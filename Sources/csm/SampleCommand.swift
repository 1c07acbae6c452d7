import ArgumentParser
import CSMDiffusion
import CSMFormats
import CSMModels
import CSMNumerics
import CSMPipeline
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
        let noise: SampleInputs.Latents
        if let latents {
            noise = try SampleInputs.Latents(file: latents, channels: c, height: h, width: w)
        } else {
            noise = SampleInputs.Latents(seeds: try parseSeeds(seeds ?? ""), repeats: trajectory == nil ? 1 : lambdas,
                                         channels: c, height: h, width: w)
        }
        let inputs = try SampleInputs(latents: noise, classes: try classes(of: net), classCount: k)
        let n = inputs.count

        Profiler.enabled = Profiler.enabled || profile
        let sampler = EDMSampler(model: net, settings: sampler.settings)
        let evaluations = sampler.settings.evaluationsPerImage
        let progress = ProgressReporter("sampling", total: n, unit: "images")
        let started = Date()
        let images = try inputs.sample(with: sampler, batch: batch, modelPath: modelPath) { progress.update($0) }
        let seconds = Date().timeIntervalSince(started)

        if let out {
            try SafeTensorsWriter.write(
                [.init(name: "images", shape: [n, c, h, w], values: images.nchw),
                 .init(name: "latents", shape: [n, c, h, w], values: inputs.latents.noise.nchw),
                 .init(name: "class_labels", shape: [n, k], values: inputs.classLabels)],
                metadata: ["model": (modelPath as NSString).lastPathComponent, "sampler": describe(sampler.settings),
                           "precision": net.precision.rawValue],
                to: out)
        }
        let pixels = try SampleInputs.pictures(of: images)
        if let png {
            try FileManager.default.createDirectory(atPath: png, withIntermediateDirectories: true)
            for i in 0..<n { try pixels[i].writePNG(path: (png as NSString).appendingPathComponent(inputs.pngName(i))) }
        }
        if let grid { try inputs.contactSheet(of: pixels, classNames: net.classNames).writePNG(path: grid) }

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

    /// The class vectors the options ask for: --labels, --trajectory, --mix or --class (one
    /// of them when the model is class-conditional).
    private func classes(of net: EDMModel) throws -> SampleInputs.Classes {
        let names = net.classNames, k = net.labelDimension
        if let labels { return .file(labels) }
        if let trajectory { return .trajectory(try ClassPair.parseOne(trajectory, classNames: names, classCount: k), lambdas: lambdas) }
        guard k > 0 else { return .unconditional }
        if let mix {
            guard let classes = try SampleInputs.Classes.mix(parsing: mix, classNames: names, classCount: k) else {
                throw ValidationError("--mix '\(mix)': expected A:B:λ with 0 ≤ λ ≤ 1, e.g. 7:9:0.7")
            }
            return classes
        }
        if let classSpec { return .single(try ClassPair.classIndex(classSpec, classNames: names, classCount: k)) }
        throw ValidationError("the model is class-conditional: give --class, --mix or --labels")
    }
}

import ArgumentParser
import CSMAttribution
import CSMFormats
import CSMNumerics
import CSMModels
import Foundation

/// `csm attribute`: which training images a sample draws on, by the Diffusion Attribution
/// Score (DAS): gradients of the denoiser's mean output, compared through a damped kernel.
struct AttributeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attribute",
        abstract: "Attribute samples to training images with the Diffusion Attribution Score (DAS).",
        discussion: """
            First index the training set once (resumable, splittable like generate), then query \
            it with generated or real images, and look at the training images each query draws on.

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm generate --out data/mixed
              csm attribute index --train data/real-train --out features.h5
              csm attribute query --features features.h5 --query data/mixed \\
                  --out attributions.h5
              csm inspect --attributions attributions.h5 --grid attributions.png
            """,
        subcommands: [Index.self, Query.self])

    /// The network (SongUNet or DhariwalUNet, with gradients) and its file's name and SHA-256.
    static func network(_ path: String?) throws -> (network: TrainableUNet, path: String, sha256: String) {
        let modelPath = try path ?? DefaultFiles.locate(DefaultFiles.diffusionModel)
        return (try TrainableUNet(path: modelPath), modelPath, try FileHash.sha256(ofFile: modelPath))
    }
}

extension AttributeCommand {
    struct Index: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute the training features Φ and weights: a csm-attribution-features/1 HDF5 file.",
            discussion: """
                φ = P · (1/T) Σ_t g_t/‖g_t‖ with g_t = ∇_θ mean(D_θ(x + σ_t ε_t; σ_t, c)) at T noise \
                levels spread like the sampler's schedule (80 … 0.002, ρ = 7), ε_t seeded per image, \
                P a Gaussian projection generated from --proj-seed.

                Finished chunks of --batch images are kept beside the output (.NAME.parts/), so a \
                killed run resumes where it stopped; workers given --shard-index/--num-shards share \
                that folder, and the run that finds every chunk finished writes the file.

                Examples:
                  csm import fashion-mnist --split train --out data/real-train
                  csm attribute index --train data/real-train --out features.h5
                  csm attribute index --train data/real-train --out features.h5 \\
                      --shard-index 0 --num-shards 4
                """)

        @Option(help: "edm-diffusion/1 model (default: the Fashion-MNIST model).")
        var model: String?
        @Option(help: "Training shards: a directory, a manifest.json or one shard.")
        var train: String
        @Option(help: "Output features file (.h5).")
        var out: String
        @Option(name: .customLong("proj-dim"), help: "Projected dimension k (0: exact gradients, k = |θ|).")
        var projDim: Int = 2048
        @Option(name: .customLong("proj-seed"), help: "Seed of the projection.")
        var projSeed: Int64 = 0
        @Option(name: .customLong("noise-seed"), help: "Seed of the noise added to each image.")
        var noiseSeed: Int64 = 0
        @Option(help: "Number of noise levels T.")
        var levels: Int = 10
        @Option(help: "Per-training-image weight: error (denoising error) or none.")
        var weight: AttributionWeighting = .error
        @Option(help: "Images per chunk, projected and saved together (more spreads the cost of generating P; memory: --batch × |θ| × 4 bytes; default: as many as 2 GiB holds, 16 to 256 — 256 for the default model).")
        var batch: Int?
        @OptionGroup var workers: WorkerOptions
        @Flag(help: "Print where the time went at the end: the stages (das: gradients, projection, writing; wall seconds) and the kernels (CPU seconds summed over threads).")
        var profile = false

        func validate() throws {
            guard projDim >= 0 else { throw ValidationError("--proj-dim must be 0 or more") }
            guard projSeed >= 0, noiseSeed >= 0 else { throw ValidationError("seeds must not be negative") }
            guard levels >= 1 else { throw ValidationError("--levels must be at least 1") }
            guard batch.map({ $0 >= 1 }) ?? true else { throw ValidationError("--batch must be at least 1") }
        }

        func run() throws {
            Profiler.enabled = Profiler.enabled || profile
            try stoppable("csm attribute index", resume: "the finished chunks are kept beside \(out); rerun the same command to index the rest") {
                try index()
            }
            if profile { printProfile() }
        }

        private func index() throws {
            let (network, modelPath, modelSHA) = try AttributeCommand.network(model)
            let images = try AttributionImages(resolving: train, for: network)
            guard images.count > 0 else { throw CLIError("\(train): holds no images") }
            let settings = AttributionSettings(sigmas: AttributionSettings.noiseLevels(levels, for: network), noiseSeed: UInt64(noiseSeed),
                                               projectionDimension: projDim, projectionSeed: UInt64(projSeed), weighting: weight)
            let featurizer = DASFeaturizer(network: network, settings: settings)
            let metadata = AttributionFeatures.Metadata(model: (modelPath as NSString).lastPathComponent, modelSHA256: modelSHA,
                                                        trainData: try images.provenance(), settings: settings)
            let job = FeatureIndexRun(out: out, metadata: metadata, count: images.count, dimension: featurizer.featureDimension,
                                      chunkSize: batch ?? FeatureIndexRun.defaultChunkSize(parameterCount: network.parameterCount))
            guard try job.prepare() else {
                printError("\(out) already holds these features (\(images.count) images); nothing to do")
                return
            }
            let (workerIndex, workerCount) = try workers.resolve()
            let mine = job.chunks(ofWorker: workerIndex, of: workerCount)
            let todo = mine.filter { !job.isDone($0) }
            let total = todo.reduce(0) { $0 + job.rows(ofChunk: $1).count }
            printError("csm attribute index: \(images.count) images, |θ| = \(network.parameterCount), k = \(featurizer.featureDimension), "
                       + "T = \(levels); worker \(workerIndex + 1)/\(workerCount): \(mine.count) chunks"
                       + (mine.count > todo.count ? " (\(mine.count - todo.count) already done)" : ""))
            let progress = ProgressReporter("indexing", total: total, unit: "images")
            let started = Date()
            try job.index(mine, of: images, with: featurizer) { progress.advance() }
            let seconds = Date().timeIntervalSince(started)
            if total > 0 {
                printError(String(format: "%d images in %.1f s: %.3f s per image, %.4f s per image × noise level", total, seconds,
                                  seconds / Double(total), seconds / Double(total * levels)))
            }
            if job.isComplete {
                try job.assemble(trainPath: URL(fileURLWithPath: train).standardizedFileURL.path, createdBy: "csm \(CSMVersion.string)")
                printError("wrote \(out): \(images.count) × \(featurizer.featureDimension) features")
            } else {
                let left = (0..<job.chunkCount).filter { !job.isDone($0) }.count
                printError("this worker is done; \(left) of \(job.chunkCount) chunks remain for other workers (the last to finish writes \(out))")
            }
        }
    }
}

extension AttributionWeighting: ExpressibleByArgument {}

extension AttributeCommand {
    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score query images against indexed training features: a csm-attributions/1 HDF5 file.",
            discussion: """
                score(q, i) = φ_q (ΦᵀΦ + λI)⁻¹ φ_iᵀ · w_i, the query features made exactly as the \
                training features (same model, noise levels, projection; the noise drawn from the \
                query stream). The kernel inverse is computed once per damping and kept beside the \
                features as FEATURES.kernel.h5.

                Examples:
                  csm import fashion-mnist --split train --out data/real-train
                  csm attribute index --train data/real-train --out features.h5
                  csm generate --out data/mixed
                  csm attribute query --features features.h5 --query data/mixed \\
                      --out attributions.h5
                  csm inspect --attributions attributions.h5 --grid attributions.png
                """)

        @Option(help: "Features file from `csm attribute index`.")
        var features: String
        @Option(help: "Query shards (generated or real): a directory, a manifest.json or one shard.")
        var query: String
        @Option(help: "The model the features were made with (default: the Fashion-MNIST model).")
        var model: String?
        @Option(help: "Training images kept per query, best first.")
        var top: Int = 10
        @Option(help: "Damping λ of the kernel ΦᵀΦ + λI.")
        var damping: Double = 0.01
        @Option(help: "Query images per batch.")
        var batch: Int = 64
        @Option(help: "Output attributions file (.h5).")
        var out: String

        func validate() throws {
            guard top >= 1 else { throw ValidationError("--top must be at least 1") }
            guard damping >= 0 && damping.isFinite else { throw ValidationError("--damping must be 0 or more") }
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        }

        func run() throws {
            try attribute()
        }

        private func attribute() throws {
            let (network, modelPath, modelSHA) = try AttributeCommand.network(model)
            let run = try AttributionQuery(featuresPath: features, network: network, modelPath: modelPath, modelSHA256: modelSHA)
            let queries = try AttributionImages(resolving: query, for: network)
            let started = Date()
            let (kernel, computed) = try run.kernel(damping: damping)
            if computed {
                printError(String(format: "kernel inverse (%@, %d × %d) in %.1f s, kept in %@", kernel.form.rawValue, kernel.size, kernel.size,
                                  Date().timeIntervalSince(started), KernelFile.path(forFeatures: features)))
            }
            let progress = ProgressReporter("attributing", total: queries.count, unit: "images")
            let result = try run.attribute(queries, queryPath: query, kernel: kernel, top: top, batch: batch) { progress.advance() }
            try result.write(to: out, createdBy: "csm \(CSMVersion.string)")
            printError("wrote \(out): top \(result.top) of \(run.index.count) training images for \(queries.count) queries")
        }
    }
}

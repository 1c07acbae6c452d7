import ArgumentParser
import CSMFormats
import CSMPipeline
import Foundation

/// `csm generate`: CSM's class-mixed samples with calibrated soft labels, as HDF5 shards.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate class-mixed trajectories, reannotate their soft labels, write csm-shard/1 HDF5 shards.",
        discussion: """
            Every pair (a, b) gets --groups-per-pair trajectories of --lambdas samples that share \
            one latent, with class vector λ·e_a + (1−λ)·e_b, λ = linspace(0, 1, L). The \
            classifier's features place each sample between the class prototypes (λ̂), and the \
            soft label is λ' = σ(s·(λ̂ − 0.5)) on a, 1 − λ' on b.

            Shard file k holds a fixed range of groups, and a group's latent depends only on \
            (--seed, group), so runs split with --shard-index/--num-shards (or a Slurm array / \
            Kubernetes Indexed Job) write exactly the files of a single run; `csm merge` joins \
            their manifests. Rerunning an interrupted command resumes it.

            Examples:
              csm generate --out data/mixed    # all 45 pairs: 720 images
              csm generate --out data/two --pairs Sneaker:"Ankle boot",Shirt:T-shirt/top \\
                  --groups-per-pair 16
              csm generate --out part2 --shard-index 2 --num-shards 8
            """)

    @Option(help: "Output directory (shards + manifest.json).")
    var out: String
    @Option(help: "edm-diffusion/1 model (default: the Fashion-MNIST model).")
    var model: String?
    @Option(help: "resnet-classifier/1 classifier (default: the Fashion-MNIST ResNet-20).")
    var classifier: String?
    @Option(help: "Class prototypes from `csm prototypes` (default: the Fashion-MNIST ones).")
    var prototypes: String?
    @Option(help: "Class pairs: all, or A:B,C:D,… (indices or names).")
    var pairs: String = "all"
    @Option(name: .customLong("groups-per-pair"), help: "Trajectories per pair (with --pair-weights: the budget is this times the pairs).")
    var groupsPerPair: Int = 2
    @Option(name: .customLong("pair-weights"), help: ArgumentHelp(
        "Allocate the trajectories by a csm-pair-weights/1 file from `csm pairs` (at least one per pair).", valueName: "file.json"))
    var pairWeights: String?
    @Option(help: "Trajectory length L (samples per group).")
    var lambdas: Int = 8
    @Option(help: "Global seed; a group's latent is a pure function of (seed, group id).")
    var seed: UInt64 = 0
    @OptionGroup var sampler: SamplerOptions
    @Option(help: "Images per network batch.")
    var batch: Int = 64
    @Option(help: "Sharpness s of the calibrated ratio σ(s·(λ̂ − 0.5)).")
    var sharpness: Double = 10
    @Option(name: .customLong("consistency-margin"), help: "δ: a sample is consistent when its top-1 class is a or b and −δ ≤ λ̂ ≤ 1+δ.")
    var consistencyMargin: Double = 0.25
    @Option(name: .customLong("shard-size"), help: "Samples per shard file (rounded down to whole trajectories).")
    var shardSize: Int = 512
    @OptionGroup var workers: WorkerOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard sharpness > 0 && sharpness.isFinite else { throw ValidationError("--sharpness must be positive") }
        guard consistencyMargin >= 0 else { throw ValidationError("--consistency-margin must be ≥ 0") }
    }

    func run() throws {
        try stoppable("csm generate", resume: "the finished shards are kept in \(out); rerun the same command to make the rest") {
            try generate()
        }
    }

    private func generate() throws {
        // One writer per output directory, from the start.
        let lock = try DirectoryLock(directory: out, command: "csm generate")
        defer { lock.release() }
        let files = GenerationRun.Files(model: try model ?? DefaultFiles.locate(DefaultFiles.diffusionModel),
                                        classifier: try classifier ?? DefaultFiles.locate(DefaultFiles.classifier),
                                        prototypes: try prototypes ?? DefaultFiles.locate(DefaultFiles.prototypes), pairWeights: pairWeights)
        sampler.warnAboutPrecision()
        var settings = GenerationRun.Settings()
        settings.pairs = pairs
        settings.groupsPerPair = groupsPerPair
        settings.lambdas = lambdas
        settings.seed = seed
        settings.sampler = sampler.settings
        settings.precision = sampler.precision
        settings.batch = batch
        settings.sharpness = sharpness
        settings.consistencyMargin = consistencyMargin
        settings.shardSize = shardSize
        let run = try GenerationRun(files: files, settings: settings, createdBy: "csm \(CSMVersion.string)")
        let plan = run.plan
        let (workerIndex, workerCount) = try workers.resolve()
        var manifest = try run.generator.openManifest(in: out)
        let mine = plan.shards(ofWorker: workerIndex, of: workerCount)
        let todo = run.generator.pending(mine, manifest: manifest, directory: out)
        let skipped = mine.count - todo.count
        let groups = run.pairWeights.map { "\($0.groups.min()!)–\($0.groups.max()!) groups (by \(pairWeights ?? ""))" } ?? "\(groupsPerPair) groups"
        printError("csm generate: \(plan.pairs.count) pairs × \(groups) × \(lambdas) λ = \(plan.sampleCount) samples in \(plan.shardCount) shards; "
                   + "worker \(workerIndex + 1)/\(workerCount): \(mine.count) shards" + (skipped > 0 ? " (\(skipped) already done)" : ""))

        let progress = ProgressReporter("generating", total: run.images(in: todo), unit: "images")
        let started = Date()
        let summary = try run.generate(todo, into: out, manifest: &manifest) { progress.update($0) }
        let seconds = Date().timeIntervalSince(started)
        printError(summary.report(directory: out, shards: todo.count, skipped: skipped, seconds: seconds, manifest: manifest))
        if let warning = summary.mismatchWarning { printError("warning: \(warning)") }
    }
}

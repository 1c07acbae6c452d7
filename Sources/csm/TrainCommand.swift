import ArgumentParser
import CSMNumerics
import CSMTraining
import Foundation

/// `csm train`: trains a classifier on real shards, optionally with CSM's mixed samples,
/// with one of the calibration losses.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a classifier on real shards (and mixed ones) with a calibration loss.",
        discussion: """
            SGD with momentum as torch.optim.SGD (weight decay on every parameter), optional \
            Nesterov and gradient-norm clipping, a multistep or cosine schedule with optional \
            linear warm-up. A share of the real samples (--val-fraction) is held out, or the real \
            shards given as --val-data are validated on instead; after every epoch the validation \
            accuracy, NLL and ECE are printed and a checkpoint is written (OUT.checkpoint). \
            Rerunning the same command after an interruption resumes from it and ends with the \
            same file as an uninterrupted run; it is removed when training ends.

            Inputs are normalised by the per-channel mean and standard deviation of the training \
            split's pixels (scaled to [0, 1]), or by the --init classifier's own. Batches, crops, \
            flips, mixed partners and the split are functions of --seed and the epoch only.

            Losses: ce, ls (--smoothing), focal (--gamma, default 3), bsce-gra (--gamma, default 2, \
            --norm), csm (cross entropy on real samples + squared L2 between softmax and soft \
            target on mixed ones; needs --mixed), csm-bsce-gra (csm with BSCE-GRA as the real term).

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm train --real data/real-train --loss ce --epochs 30 --out ce.safetensors
              csm generate --out data/mixed
              csm train --real data/real-train --mixed data/mixed --loss csm --clip 2 \\
                  --out csm.safetensors
            """)

    @Option(help: ArgumentHelp("Real shards: a directory with a manifest, a manifest, or a shard.", valueName: "dir"))
    var real: String

    @Option(help: ArgumentHelp("Mixed shards for --loss csm / csm-bsce-gra.", valueName: "dir"))
    var mixed: String?

    @Option(help: "Loss: \(TrainingLoss.Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var loss = "ce"

    @Option(help: "Network: \(NetworkPresets.names.joined(separator: ", ")) (ignored with --init).")
    var arch = "resnet20"

    @Option(name: .customLong("init"), help: ArgumentHelp("Start from this classifier file (its input normalisation too).", valueName: "file"))
    var initialModel: String?

    @Option(help: "Epochs.")
    var epochs = 30

    @Option(help: ArgumentHelp("Stop after this many optimiser steps (the first of --epochs and --max-steps wins).", valueName: "n"))
    var maxSteps: Int?

    @Option(help: "Real images per step (each brings 1 + --n-aug mixed images with --mixed, with probability --mixed-share).")
    var batch = 128

    @Option(help: "Learning rate.")
    var lr = 0.1

    @Option(help: "SGD momentum.")
    var momentum = 0.9

    @Option(help: "Weight decay (added to every parameter's gradient).")
    var weightDecay = 5e-4

    @Flag(help: "Nesterov momentum.")
    var nesterov = false

    @Option(help: "Clip the gradient norm over all parameters at this value (0: off; the CSM and BSCE-GRA recipes use 2).")
    var clip = 0.0

    @Option(help: "Learning-rate schedule: multistep (per epoch) or cosine (over all optimiser steps).")
    var schedule = "multistep"

    @Option(help: ArgumentHelp("Multistep epochs at which the rate is multiplied by --gamma-lr (default: 40% and 60% of --epochs, rounded down, when past 0).",
                               valueName: "e1,e2,…"))
    var milestones: String?

    @Option(help: "Multistep factor.")
    var gammaLR = 0.1

    @Option(help: "Linear warm-up over this many epochs.")
    var warmupEpochs = 0.0

    @Option(help: "Label smoothing ε of --loss ls.")
    var smoothing = 0.1

    @Option(help: "γ of focal (default 3) and bsce-gra / csm-bsce-gra (default 2).")
    var gamma: Double?

    @Option(help: "Norm of the BSCE-GRA weight ‖onehot − p‖ (a number ≥ 1, or inf).")
    var norm = "2"

    @Option(name: .customLong("val-data"), help: ArgumentHelp(
        "Real shards to validate on after every epoch instead of a held-out share.", valueName: "dir"))
    var valData: String?

    @Option(help: ArgumentHelp("Share of the real samples held out for validation (default 0.1; 0 with --val-data).", valueName: "share"))
    var valFraction: Double?

    @Option(help: "Seed of the split, the batches, the augmentation and the initial weights.")
    var seed: UInt64 = 0

    @Flag(help: "No random crop (padding 4) and flip.")
    var noAugment = false

    @Option(help: "Interior trajectory samples per real sample, besides the endpoint.")
    var nAug = 1

    @Option(help: "Re-derive mixed labels from λ̂ with this sharpness (default: the stored labels).")
    var sharpness: Double?

    @Flag(help: "Train real samples of classes without a mixed trajectory on their own instead of stopping.")
    var skipUnpaired = false

    @Flag(help: ArgumentHelp(
        "Build trajectories from mixed samples whose consistent flag is 1 only.",
        discussion: "Where an endpoint is dropped, the trajectory's extreme remaining member (smallest or largest lambda_gen) acts as the endpoint; a trajectory with fewer than 2 members left is not used."))
    var consistentOnly = false

    @Option(help: ArgumentHelp(
        "Probability (0 < P ≤ 1) that a real sample brings its mixed group (endpoint + --n-aug members), drawn from --seed, the epoch and the position: the share of mixed samples per batch, apart from --n-aug.",
        valueName: "P"))
    var mixedShare = 1.0

    @Option(help: "Which epoch to save: best (validation accuracy) or last (default: best; last with --val-fraction 0).")
    var keep: String?

    @Option(help: ArgumentHelp("Checkpoint file (default: OUT.checkpoint).", valueName: "file"))
    var checkpoint: String?

    @Flag(help: "One JSON line per epoch on stdout.")
    var json = false

    @Flag(help: "Print a per-kernel time profile (CPU seconds summed over threads) at the end.")
    var profile = false

    @Option(help: ArgumentHelp("The trained classifier.", valueName: "file.safetensors"))
    var out: String

    func run() throws {
        let config = try trainingConfiguration()
        Profiler.enabled = Profiler.enabled || profile
        var initial: TrainableNetwork?
        if let initialModel { initial = try NetworkPresets.load(initialModel) }
        let normalization = initial.map { (mean: $0.input.mean, std: $0.input.std) }
        let data = try TrainingData(realPath: real, mixedPath: mixed, validationPath: valData, options: config.data, normalization: normalization)
        let network: TrainableNetwork
        if let initial {
            try NetworkPresets.check(initial, file: initialModel ?? "", against: data)
            network = initial
        } else {
            network = try NetworkPresets.make(arch, input: data.input, classNames: data.classNames, seed: seed)
        }
        if !data.unpairedClasses.isEmpty {
            printError("note: classes without a mixed trajectory, trained on real samples only: "
                       + data.unpairedClasses.map { data.classNames[$0] }.joined(separator: ", "))
        }
        let checkpointPath = checkpoint ?? out + ".checkpoint"
        let trainer = try Trainer(network: network, data: data, configuration: config, checkpointPath: checkpointPath)
        if trainer.resumed {
            printError("resuming from \(checkpointPath) after epoch \(trainer.epochsDone) (step \(trainer.step))")
        }
        let saved = { FileManager.default.fileExists(atPath: checkpointPath) ? "\(checkpointPath) holds epoch \(trainer.epochsDone)" : "no epoch had finished" }
        try stoppable("csm train", resume: "\(saved()); rerun the same command to resume") {
            try train(trainer, data: data)
        }
        try trainer.writeModel(to: out)
        try? FileManager.default.removeItem(atPath: checkpointPath)
        if profile { printProfile() }
        let kept = trainer.history.first { $0.epoch == trainer.keptEpoch }
        let accuracy = kept?.validationAccuracy.map { String(format: ", validation accuracy %.4f", $0) } ?? ""
        printError("wrote \(out): epoch \(trainer.keptEpoch) of \(trainer.epochsDone) (\(config.keep.rawValue))\(accuracy)")
    }

    private func train(_ trainer: Trainer, data: TrainingData) throws {
        let mixedPerReal = mixed == nil ? 0 : Double(1 + nAug) * mixedShare
        let imagesPerEpoch = Int((Double(data.trainIndices.count) * (1 + mixedPerReal)).rounded())
        var progress: ProgressReporter?
        var started = Date()
        var images = 0.0
        try trainer.run(onStep: { report in
            if progress == nil || report.stepInEpoch == 1 {
                progress = ProgressReporter("epoch \(report.epoch + 1)/\(epochs)", total: imagesPerEpoch, unit: "img", start: started)
            }
            images = Double(report.images)
            progress?.update(report.images, detail: String(format: "step %d  loss %.4f", report.step, report.loss))
        }, onEpoch: { record in
            // Validation and the checkpoint count in the epoch's time.
            let seconds = Date().timeIntervalSince(started)
            progress = nil
            let rate = seconds > 0 ? images / seconds : 0
            print(json ? record.json(seconds: seconds, imagesPerSecond: rate, peakMemoryMiB: peakMemoryMiB())
                       : record.text(epochs: epochs, imagesPerSecond: rate))
            fflush(stdout)
            started = Date()
        })
    }

    /// The settings as a `TrainingConfiguration`, each option checked.
    private func trainingConfiguration() throws -> TrainingConfiguration {
        guard let lossKind = TrainingLoss.Kind(rawValue: loss) else {
            throw CLIError("--loss must be one of \(TrainingLoss.Kind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(loss)'")
        }
        guard NetworkPresets.names.contains(arch) else {
            throw CLIError("--arch must be one of \(NetworkPresets.names.joined(separator: ", ")), got '\(arch)'")
        }
        guard let scheduleKind = LearningRateSchedule.Kind(rawValue: schedule) else {
            throw CLIError("--schedule must be multistep or cosine, got '\(schedule)'")
        }
        let normValue: Double
        if ["inf", "infinity"].contains(norm.lowercased()) { normValue = .infinity } else {
            guard let value = Double(norm), value >= 1 else { throw CLIError("--norm must be a number ≥ 1 or inf, got '\(norm)'") }
            normValue = value
        }
        var milestoneEpochs = [Int(Double(epochs) * 0.4), Int(Double(epochs) * 0.6)].filter { $0 > 0 }
        if let milestones {
            let parts = milestones.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) > 0 }) else {
                throw CLIError("--milestones must be positive epochs separated by commas, got '\(milestones)'")
            }
            milestoneEpochs = parts.compactMap { $0 }
        }
        guard batch > 0 else { throw CLIError("--batch must be positive, got \(batch)") }
        guard nAug >= 0 else { throw CLIError("--n-aug must be non-negative, got \(nAug)") }
        guard mixedShare > 0, mixedShare <= 1 else { throw CLIError("--mixed-share must lie in (0, 1], got \(mixedShare)") }
        if let sharpness, !(sharpness.isFinite && sharpness > 0) {
            throw CLIError("--sharpness must be positive, got \(sharpness)")
        }
        let validationFraction = valFraction ?? (valData == nil ? 0.1 : 0)
        let keepChoice: TrainingConfiguration.Keep
        if let keep {
            guard let value = TrainingConfiguration.Keep(rawValue: keep) else { throw CLIError("--keep must be best or last, got '\(keep)'") }
            keepChoice = value
        } else {
            keepChoice = validationFraction == 0 && valData == nil ? .last : .best
        }
        let config = TrainingConfiguration(
            real: real, mixed: mixed, validation: valData, architecture: initialModel == nil ? arch : "as in --init", initialModel: initialModel,
            loss: TrainingLoss(kind: lossKind, smoothing: smoothing, gamma: gamma, norm: normValue),
            data: TrainingDataOptions(batchSize: batch, validationFraction: validationFraction, seed: seed, augment: !noAugment,
                                      mixedAugmentations: nAug, sharpness: sharpness, skipUnpaired: skipUnpaired,
                                      consistentOnly: consistentOnly, mixedShare: mixedShare),
            epochs: epochs, maxSteps: maxSteps, learningRate: lr, momentum: momentum, weightDecay: weightDecay, nesterov: nesterov,
            clip: clip, schedule: scheduleKind, milestones: milestoneEpochs, gammaLR: gammaLR, warmupEpochs: warmupEpochs,
            keep: keepChoice)
        try config.validate()
        return config
    }
}

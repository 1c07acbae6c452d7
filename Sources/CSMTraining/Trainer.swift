import CSMFormats
import CSMCalibration
import CSMNumerics
import Foundation

/// Progress within an epoch, reported after every optimiser step.
public struct StepReport: Sendable {
    /// 0-based epoch.
    public var epoch: Int
    /// Steps done in this epoch and in the run.
    public var stepInEpoch: Int
    public var step: Int
    /// Images (real + mixed) seen in this epoch.
    public var images: Int
    public var loss: Double
    public var learningRate: Double
}

/// The training loop: SGD on the configured loss, validation and a checkpoint after every
/// epoch, resuming from the checkpoint when one exists.
public final class Trainer {
    public let network: TrainableNetwork
    public let data: TrainingData
    public let configuration: TrainingConfiguration
    public let checkpointPath: String
    public let schedule: LearningRateSchedule
    public let optimizer: SGD
    /// Optimiser steps the run takes in all.
    public let totalSteps: Int
    /// Epochs done (from a checkpoint, or by `run`).
    public private(set) var epochsDone = 0
    /// Optimiser steps done.
    public private(set) var step = 0
    public private(set) var history: [EpochRecord] = []
    public private(set) var best: Checkpoint.Best?
    /// Whether the run started from a checkpoint.
    public private(set) var resumed = false

    /// Prepares a run; when `checkpointPath` exists, resumes from it (refusing one written
    /// with a different configuration).
    public init(network: TrainableNetwork, data: TrainingData, configuration: TrainingConfiguration, checkpointPath: String) throws {
        try configuration.validate()
        guard network.classCount == data.classCount else {
            throw TrainingError("the network has \(network.classCount) classes, the data \(data.classCount)")
        }
        self.network = network
        self.data = data
        self.configuration = configuration
        self.checkpointPath = checkpointPath
        let perEpoch = data.stepsPerEpoch
        totalSteps = min(configuration.epochs * perEpoch, configuration.maxSteps ?? Int.max)
        schedule = LearningRateSchedule(
            kind: configuration.schedule, baseRate: configuration.learningRate, milestones: configuration.milestones,
            gamma: configuration.gammaLR, warmupSteps: Int((configuration.warmupEpochs * Double(perEpoch)).rounded()),
            stepsPerEpoch: perEpoch, totalSteps: totalSteps)
        optimizer = SGD(parameterCount: network.parameters.count, momentum: Float(configuration.momentum),
                        weightDecay: Float(configuration.weightDecay), nesterov: configuration.nesterov)
        if FileManager.default.fileExists(atPath: checkpointPath) { try resume() }
    }

    /// Whether every step has been taken.
    public var isFinished: Bool { step >= totalSteps || epochsDone >= configuration.epochs }

    private func resume() throws {
        let checkpoint = try Checkpoint.read(from: checkpointPath, tensors: network.state, parameterCount: network.parameters.count)
        let differences = configuration.differences(from: checkpoint.configuration)
        guard differences.isEmpty else {
            throw FileError(checkpointPath, "a checkpoint of a run with different settings (\(differences.joined(separator: ", "))); delete it or change --out to start afresh")
        }
        for (tensor, values) in zip(network.state, checkpoint.state) { tensor.value = values }
        network.batchesTracked = checkpoint.batchesTracked
        try optimizer.restore(momentumBuffers: checkpoint.momentum, for: network.parameters)
        epochsDone = checkpoint.epochsDone
        step = checkpoint.step
        history = checkpoint.history
        best = checkpoint.best
        resumed = true
    }

    /// Trains the remaining epochs. `onStep` follows every optimiser step; `onEpoch` every
    /// epoch, after its checkpoint is written (an error it throws stops the run there).
    public func run(onStep: (StepReport) -> Void = { _ in }, onEpoch: (EpochRecord) throws -> Void = { _ in }) throws {
        let parameters = network.parameters
        let k = network.classCount
        while !isFinished {
            let epoch = epochsDone
            let batches = data.batches(epoch: epoch)
            var lossSum = 0.0, batchCount = 0, images = 0, rate = 0.0
            while step < totalSteps, let batch = try Profiler.measure("step: wait for data", { try batches.next() }) {
                // A stop request drops the epoch in flight; the last checkpoint resumes it.
                try Interruption.check()
                for parameter in parameters { parameter.zeroGradient() }
                let logits = Profiler.measure("step: forward") { network.forwardTraining(batch.images) }
                let split = batch.realCount * k
                let loss: (value: Double, gradient: [Float])
                do {
                    loss = try configuration.loss.evaluate(
                        realLogits: Array(logits[..<split]), realLabels: batch.realLabels, mixedLogits: Array(logits[split...]),
                        mixedTargets: batch.mixedTargets, classCount: k)
                } catch CalibrationError.nonFiniteLogit {
                    throw nonFinite("the logits are not finite", epoch: epoch)
                }
                guard loss.value.isFinite else { throw nonFinite("the loss is \(loss.value)", epoch: epoch) }
                Profiler.measure("step: backward") { network.backward(loss.gradient) }
                rate = schedule.rate(step: step)
                try Profiler.measure("step: clip + SGD") {
                    // The norm (one pass over the gradient) catches a NaN or ±Inf before SGD spreads it.
                    let norm = configuration.clip > 0 ? clipGradientNorm(parameters, maxNorm: configuration.clip)
                                                      : gradientNorm(parameters)
                    guard norm.isFinite else { throw nonFinite("the gradient norm is \(norm)", epoch: epoch) }
                    optimizer.step(parameters, lr: Float(rate))
                }
                step += 1
                batchCount += 1
                images += batch.images.count
                lossSum += loss.value
                onStep(StepReport(epoch: epoch, stepInEpoch: batchCount, step: step, images: images, loss: loss.value, learningRate: rate))
            }
            var record = EpochRecord(epoch: epoch + 1, steps: step, learningRate: rate,
                                     trainLoss: batchCount > 0 ? lossSum / Double(batchCount) : 0)
            if let metrics = try validate() {
                record.validationAccuracy = metrics.accuracy
                record.validationNLL = metrics.nll
                record.validationECE = metrics.ece
                if best == nil || metrics.accuracy > best!.accuracy {
                    best = Checkpoint.Best(epoch: epoch + 1, accuracy: metrics.accuracy, state: network.state.map(\.value),
                                           batchesTracked: network.batchesTracked)
                }
            }
            epochsDone = epoch + 1
            history.append(record)
            try checkpoint().write(to: checkpointPath, tensors: network.state, parameterCount: parameters.count)
            try onEpoch(record)
        }
    }

    /// Calibration metrics (15 bins) of the network on the validation split; nil without one.
    public func validate() throws -> CalibrationMetrics? {
        guard let batches = data.validationBatches() else { return nil }
        var logits: [Float] = [], labels: [Int] = []
        while let batch = try batches.next() {
            logits += network.forwardInference(batch.images).logits
            labels += batch.realLabels
        }
        do {
            return try CalibrationMetrics(logits: logits, classCount: network.classCount, labels: labels, binCount: 15)
        } catch CalibrationError.nonFiniteLogit {
            throw nonFinite("the validation logits are not finite", epoch: epochsDone)
        }
    }

    /// The run's state as a checkpoint.
    public func checkpoint() -> Checkpoint {
        Checkpoint(configuration: configuration.json(), epochsDone: epochsDone, step: step, batchesTracked: network.batchesTracked,
                   history: history, state: network.state.map(\.value), momentum: optimizer.momentumBuffers, best: best)
    }

    /// The epoch whose weights `writeModel` saves.
    public var keptEpoch: Int {
        configuration.keep == .best ? (best?.epoch ?? epochsDone) : epochsDone
    }

    /// Writes the kept epoch's network to `path` with the training provenance in its
    /// metadata (`training`: configuration, epoch records, kept epoch, steps).
    public func writeModel(to path: String, metadata extra: [String: String] = [:]) throws {
        if configuration.keep == .best, let best {
            for (tensor, values) in zip(network.state, best.state) { tensor.value = values }
            network.batchesTracked = best.batchesTracked
        }
        var metadata = extra
        metadata["training"] = JSONValue.object([
            "configuration": try JSONValue(encoding: configuration), "epochs": try JSONValue(encoding: history),
            "kept_epoch": .int(Int64(keptEpoch)), "steps": .int(Int64(step)),
        ]).jsonText
        let record = history.first { $0.epoch == keptEpoch }
        var provenance = "csm train: \(configuration.architecture), loss \(configuration.loss.kind.rawValue), \(epochsDone) epochs (\(step) SGD steps) on \(configuration.real)"
        if let mixed = configuration.mixed {
            let data = configuration.data
            let choice = [data.consistentOnly ? "consistent samples only" : nil,
                          data.mixedShare < 1 ? "mixed share \(data.mixedShare)" : nil].compactMap { $0 }
            provenance += " + mixed \(mixed)" + (choice.isEmpty ? "" : " (\(choice.joined(separator: ", ")))")
        }
        provenance += ", kept epoch \(keptEpoch) (\(configuration.keep.rawValue))"
        if let accuracy = record?.validationAccuracy { provenance += String(format: ", validation accuracy %.4f", accuracy) }
        metadata["provenance"] = provenance
        try network.save(to: path, metadata: metadata)
    }

    private func nonFinite(_ what: String, epoch: Int) -> TrainingError {
        let kept = FileManager.default.fileExists(atPath: checkpointPath)
            ? "the last good checkpoint, \(checkpointPath), holds epoch \(epochsDone)" : "no checkpoint was written yet"
        return TrainingError("training stopped: \(what) at epoch \(epoch + 1), step \(step + 1); \(kept)")
    }
}

import CSMFormats
import Foundation

/// Everything that decides what a run computes: written into every checkpoint (a resumed
/// run must match it) and into the trained model's metadata (provenance).
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    /// Which epoch's weights the output file holds.
    public enum Keep: String, Codable, CaseIterable, Sendable {
        /// The epoch with the best validation accuracy (the first on ties).
        case best
        /// The last epoch.
        case last
    }

    public var real: String
    public var mixed: String?
    /// Real shards validated on after every epoch instead of a share held out of `real`.
    public var validation: String?
    public var architecture: String
    /// The classifier file training starts from (nil: fresh weights from `data.seed`).
    public var initialModel: String?
    public var loss: TrainingLoss
    public var data: TrainingDataOptions
    public var epochs: Int
    /// Stop after this many optimiser steps (nil: no limit); the first of epochs/steps wins.
    public var maxSteps: Int?
    public var learningRate: Double
    public var momentum: Double
    public var weightDecay: Double
    public var nesterov: Bool
    /// Gradient-norm clipping threshold (0: off).
    public var clip: Double
    public var schedule: LearningRateSchedule.Kind
    /// Multistep milestones, in epochs.
    public var milestones: [Int]
    /// Multistep factor.
    public var gammaLR: Double
    public var warmupEpochs: Double
    public var keep: Keep

    public init(real: String, mixed: String? = nil, validation: String? = nil, architecture: String, initialModel: String? = nil, loss: TrainingLoss,
                data: TrainingDataOptions, epochs: Int, maxSteps: Int? = nil, learningRate: Double = 0.1, momentum: Double = 0.9,
                weightDecay: Double = 5e-4, nesterov: Bool = false, clip: Double = 0, schedule: LearningRateSchedule.Kind = .multistep,
                milestones: [Int] = [], gammaLR: Double = 0.1, warmupEpochs: Double = 0, keep: Keep = .best) {
        self.real = real
        self.mixed = mixed
        self.validation = validation
        self.architecture = architecture
        self.initialModel = initialModel
        self.loss = loss
        self.data = data
        self.epochs = epochs
        self.maxSteps = maxSteps
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.clip = clip
        self.schedule = schedule
        self.milestones = milestones
        self.gammaLR = gammaLR
        self.warmupEpochs = warmupEpochs
        self.keep = keep
    }

    /// Refuses settings that cannot train.
    public func validate() throws {
        guard epochs > 0 else { throw TrainingError("--epochs must be positive, got \(epochs)") }
        if let maxSteps, maxSteps <= 0 { throw TrainingError("--max-steps must be positive, got \(maxSteps)") }
        guard learningRate.isFinite, learningRate > 0 else { throw TrainingError("--lr must be positive, got \(learningRate)") }
        guard (0...1).contains(momentum) else { throw TrainingError("--momentum must lie in [0, 1], got \(momentum)") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw TrainingError("--weight-decay must be non-negative, got \(weightDecay)") }
        guard !nesterov || momentum > 0 else { throw TrainingError("--nesterov needs a positive --momentum") }
        guard clip.isFinite, clip >= 0 else { throw TrainingError("--clip must be non-negative (0 turns clipping off), got \(clip)") }
        guard gammaLR.isFinite, gammaLR > 0 else { throw TrainingError("--gamma-lr must be positive, got \(gammaLR)") }
        guard warmupEpochs.isFinite, warmupEpochs >= 0 else { throw TrainingError("--warmup-epochs must be non-negative") }
        guard data.mixedAugmentations >= 0 else { throw TrainingError("--n-aug must be non-negative") }
        guard data.mixedShare > 0, data.mixedShare <= 1 else {
            throw TrainingError("--mixed-share must lie in (0, 1], got \(data.mixedShare)")
        }
        if mixed == nil && (data.consistentOnly || data.mixedShare != 1) {
            throw TrainingError("--consistent-only and --mixed-share choose mixed samples: give --mixed DIR (and --loss csm or csm-bsce-gra)")
        }
        if loss.usesMixed && mixed == nil { throw TrainingError("--loss \(loss.kind.rawValue) trains on mixed samples: give --mixed DIR") }
        if !loss.usesMixed && mixed != nil {
            throw TrainingError("--mixed is used by --loss csm and csm-bsce-gra only, not \(loss.kind.rawValue)")
        }
        if validation != nil && data.validationFraction != 0 {
            throw TrainingError("--val-data replaces the held-out share: give --val-fraction 0 with it")
        }
        if keep == .best && data.validationFraction == 0 && validation == nil {
            throw TrainingError("--keep best needs a validation split; with --val-fraction 0 use --keep last or give --val-data")
        }
    }

    /// The configuration as JSON with sorted keys (equal configurations give equal text).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The top-level settings in which `other` (a checkpoint's configuration as JSON) differs.
    public func differences(from other: String) -> [String] {
        guard case .object(let mine)? = try? JSONDecoder().decode(JSONValue.self, from: Data(json().utf8)),
              case .object(let theirs)? = try? JSONDecoder().decode(JSONValue.self, from: Data(other.utf8)) else {
            return ["(unreadable configuration)"]
        }
        return Set(mine.keys).union(theirs.keys).sorted().filter { mine[$0] != theirs[$0] }
    }
}

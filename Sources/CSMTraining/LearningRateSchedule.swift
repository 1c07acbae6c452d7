import Foundation

/// The learning rate of every optimiser step, a pure function of the step number (so a
/// resumed run needs no scheduler state).
///
/// - `multistep`: base · gamma^(number of milestones ≤ epoch), as `torch.optim.lr_scheduler.MultiStepLR`
///   stepped once per epoch.
/// - `cosine`: base · (1 + cos(π·t/T)) / 2 over the T optimiser steps of the run (t = 0 …
///   T−1), as `CosineAnnealingLR(T_max=T, eta_min=0)` stepped after every optimiser step.
///
/// A linear warm-up over the first `warmupSteps` steps multiplies either by (t + 1)/warmupSteps.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable { case multistep, cosine }

    public var kind: Kind
    public var baseRate: Double
    /// Epochs (0-based count of finished epochs) at which multistep multiplies by `gamma`.
    public var milestones: [Int]
    public var gamma: Double
    public var warmupSteps: Int
    public var stepsPerEpoch: Int
    public var totalSteps: Int

    public init(kind: Kind, baseRate: Double, milestones: [Int] = [], gamma: Double = 0.1, warmupSteps: Int = 0,
                stepsPerEpoch: Int, totalSteps: Int) {
        self.kind = kind
        self.baseRate = baseRate
        self.milestones = milestones
        self.gamma = gamma
        self.warmupSteps = max(0, warmupSteps)
        self.stepsPerEpoch = max(1, stepsPerEpoch)
        self.totalSteps = max(1, totalSteps)
    }

    /// The learning rate of optimiser step `step` (0-based).
    public func rate(step: Int) -> Double {
        var rate: Double
        switch kind {
        case .multistep:
            let epoch = step / stepsPerEpoch
            rate = baseRate * pow(gamma, Double(milestones.filter { $0 <= epoch }.count))
        case .cosine:
            rate = baseRate * (1 + cos(Double.pi * Double(min(step, totalSteps)) / Double(totalSteps))) / 2
        }
        if step < warmupSteps { rate *= Double(step + 1) / Double(warmupSteps) }
        return rate
    }
}

/// What one epoch gave: kept in checkpoints and in the trained model's metadata, so it holds
/// no timings (a resumed run writes the same bytes as an uninterrupted one).
public struct EpochRecord: Codable, Equatable, Sendable {
    /// 1-based.
    public var epoch: Int
    /// Optimiser steps taken by the end of the epoch.
    public var steps: Int
    /// Learning rate of the epoch's last step.
    public var learningRate: Double
    /// Mean of the batch losses.
    public var trainLoss: Double
    public var validationAccuracy: Double?
    public var validationNLL: Double?
    public var validationECE: Double?
}

import CSMFormats
import Foundation

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

    public init(epoch: Int, steps: Int, learningRate: Double, trainLoss: Double, validationAccuracy: Double? = nil,
                validationNLL: Double? = nil, validationECE: Double? = nil) {
        self.epoch = epoch
        self.steps = steps
        self.learningRate = learningRate
        self.trainLoss = trainLoss
        self.validationAccuracy = validationAccuracy
        self.validationNLL = validationNLL
        self.validationECE = validationECE
    }
}

extension EpochRecord {
    /// The epoch's line of `csm train`: steps, rate, training loss, the validation figures
    /// when there are any, and the throughput measured by the caller.
    public func text(epochs: Int, imagesPerSecond: Double) -> String {
        var line = String(format: "epoch %d/%d  step %d  lr %.4g  train loss %.4f", epoch, epochs, steps, learningRate, trainLoss)
        if let validationAccuracy, let validationNLL, let validationECE {
            line += String(format: "  val accuracy %.4f  NLL %.4f  ECE %.4f", validationAccuracy, validationNLL, validationECE)
        }
        return line + String(format: "  %.0f img/s", imagesPerSecond)
    }

    /// The epoch's line of `csm train --json`: one JSON object with the record and the
    /// caller's timings (`seconds`, `images_per_second`, `peak_memory_mib`).
    public func json(seconds: Double, imagesPerSecond: Double, peakMemoryMiB: Double) -> String {
        var object: [String: JSONValue] = [
            "epoch": .int(Int64(epoch)), "steps": .int(Int64(steps)), "lr": .double(learningRate), "train_loss": .double(trainLoss),
            "seconds": .double(seconds), "images_per_second": .double(imagesPerSecond), "peak_memory_mib": .double(peakMemoryMiB),
        ]
        if let validationAccuracy { object["val_accuracy"] = .double(validationAccuracy) }
        if let validationNLL { object["val_nll"] = .double(validationNLL) }
        if let validationECE { object["val_ece"] = .double(validationECE) }
        return JSONValue.object(object).jsonText
    }
}

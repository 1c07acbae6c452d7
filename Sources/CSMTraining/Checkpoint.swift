import CSMFormats
import CSMNumerics
import Foundation

/// A run's full state after an epoch: weights, buffers, batches tracked, SGD momentum,
/// epoch, step, the epoch records, the best epoch's weights, and the configuration. The
/// data order and augmentation are functions of (seed, epoch), so the epoch is the random
/// state. Stored as a safetensors file written through `AtomicFile` (temporary file, fsync,
/// rename): a failed write, e.g. on a full disk, leaves the previous checkpoint as it was.
/// Tensors keep the network's names under `state/`, `momentum/` and `best/`
/// (docs/formats/checkpoint.md).
public struct Checkpoint {
    public static let format = "csm-training-checkpoint/1"

    public var configuration: String
    public var epochsDone: Int
    public var step: Int
    public var batchesTracked: Int
    public var history: [EpochRecord]
    /// Values of the network's parameters then buffers.
    public var state: [[Float]]
    /// One momentum buffer per parameter (empty before the first step).
    public var momentum: [[Float]]
    /// The best epoch (1-based), its accuracy, state and batches tracked; nil before one.
    public var best: Best?

    public struct Best: Equatable {
        public var epoch: Int
        public var accuracy: Double
        public var state: [[Float]]
        public var batchesTracked: Int
    }

    /// Writes the checkpoint for a network whose state tensors (parameters first) are `tensors`.
    public func write(to path: String, tensors: [Parameter], parameterCount: Int) throws {
        var items: [SafeTensorsWriter.Item] = []
        for (tensor, values) in zip(tensors, state) {
            items.append(.init(name: "state/\(tensor.name)", shape: tensor.shape, values: values))
        }
        for (tensor, values) in zip(tensors.prefix(parameterCount), momentum) where !values.isEmpty {
            items.append(.init(name: "momentum/\(tensor.name)", shape: tensor.shape, values: values))
        }
        var metadata = [
            "format": Self.format, "configuration": configuration, "epochs_done": "\(epochsDone)", "step": "\(step)",
            "batches_tracked": "\(batchesTracked)", "history": Self.encode(history),
        ]
        if let best {
            for (tensor, values) in zip(tensors, best.state) {
                items.append(.init(name: "best/\(tensor.name)", shape: tensor.shape, values: values))
            }
            metadata["best_epoch"] = "\(best.epoch)"
            metadata["best_accuracy"] = "\(best.accuracy)"
            metadata["best_batches_tracked"] = "\(best.batchesTracked)"
        }
        try SafeTensorsWriter.write(items, metadata: metadata, to: path)
    }

    /// Reads a checkpoint for a network with state tensors `tensors` (parameters first).
    public static func read(from path: String, tensors: [Parameter], parameterCount: Int) throws -> Checkpoint {
        let file = try SafeTensorsFile(path: path)
        try file.requireFormat(format)
        func integer(_ key: String) throws -> Int {
            guard let text = file.metadata[key], let value = Int(text), value >= 0 else {
                throw FileError(path, "metadata '\(key)' is missing or not a count")
            }
            return value
        }
        guard let configuration = file.metadata["configuration"] else { throw FileError(path, "metadata has no 'configuration'") }
        let history: [EpochRecord]
        do {
            history = try JSONDecoder().decode([EpochRecord].self, from: Data((file.metadata["history"] ?? "").utf8))
        } catch {
            throw FileError(path, "metadata 'history' is not a list of epoch records")
        }
        let state = try tensors.map { try file.floats("state/\($0.name)", shape: $0.shape) }
        let momentum = try tensors.prefix(parameterCount).map { tensor in
            file.contains("momentum/\(tensor.name)") ? try file.floats("momentum/\(tensor.name)", shape: tensor.shape) : []
        }
        var best: Best?
        if file.metadata["best_epoch"] != nil {
            guard let accuracy = file.metadata["best_accuracy"].flatMap(Double.init) else {
                throw FileError(path, "metadata 'best_accuracy' is not a number")
            }
            best = Best(epoch: try integer("best_epoch"), accuracy: accuracy,
                        state: try tensors.map { try file.floats("best/\($0.name)", shape: $0.shape) },
                        batchesTracked: try integer("best_batches_tracked"))
        }
        return Checkpoint(configuration: configuration, epochsDone: try integer("epochs_done"), step: try integer("step"),
                          batchesTracked: try integer("batches_tracked"), history: history, state: state,
                          momentum: momentum, best: best)
    }

    static func encode(_ history: [EpochRecord]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(history)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}

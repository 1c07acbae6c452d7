import CSMNumerics

/// A training batch's activations chunk by chunk (see `BatchChunks`), each chunk either
/// given or computed when it is first asked for. A batch-norm layer's output is made this
/// way: chunk i is normalised by the task of the next layer that reads chunk i, so it goes
/// from the normalisation into that layer's convolution while it is in the core's cache,
/// instead of a separate pass over the whole batch.
///
/// Only the task for chunk i may ask for chunk i while a `BatchChunks.map` runs; the maps
/// of successive layers do not overlap, so no chunk is computed twice.
final class ChunkedActivations: @unchecked Sendable {
    /// Number of chunks.
    let count: Int
    private let make: ((Int) -> FeatureMap)?
    private let slots: UnsafeMutableBufferPointer<FeatureMap?>

    /// Chunks already computed.
    init(_ chunks: [FeatureMap]) {
        count = chunks.count
        make = nil
        slots = .allocate(capacity: chunks.count)
        _ = slots.initialize(from: chunks.map { Optional($0) })
    }

    /// `count` chunks, chunk i computed by `make(i)` on first use.
    init(count: Int, make: @escaping (Int) -> FeatureMap) {
        self.count = count
        self.make = make
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    /// Chunk i, computed now if it was not yet.
    func chunk(_ i: Int) -> FeatureMap {
        if let ready = slots[i] { return ready }
        guard let make else { preconditionFailure("ChunkedActivations: chunk \(i) missing") }
        let value = make(i)
        slots[i] = value
        return value
    }

    /// Every chunk in order (those not yet computed are computed concurrently).
    var all: [FeatureMap] { BatchChunks.map(count) { chunk($0) } }
}

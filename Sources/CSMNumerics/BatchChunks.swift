/// How training kernels split a batch: into contiguous chunks of images, fixed by the batch
/// size alone — `minimumCount` chunks (fewer only for fewer images), more where that would
/// make a chunk larger than `maximumImages`, so that a chunk's activations stay in a core's
/// cache between the kernels that run on it. Layers run chunk by chunk (concurrently), and
/// whatever they reduce over the batch (batch-norm statistics, weight gradients) is summed
/// per chunk and then over chunks in chunk order, so results are bitwise the same from run
/// to run and whatever the number of threads.
public enum BatchChunks {
    /// The fewest chunks a batch of at least that many images is split into.
    public static let minimumCount = 8
    /// The most images in a chunk once a batch has more than `minimumCount` · `maximumImages` images.
    public static let maximumImages = 16

    /// The image ranges of a batch of `count` images.
    public static func ranges(_ count: Int) -> [Range<Int>] {
        Parallel.ranges(count, parts: max(minimumCount, (count + maximumImages - 1) / maximumImages))
    }

    /// `x` split into its chunks.
    public static func split(_ x: FeatureMap) -> [FeatureMap] {
        let parts = ranges(x.count)
        return parts.count <= 1 ? [x] : parts.map { x.slice($0) }
    }

    /// Runs `body` on every chunk index concurrently and returns the results in chunk order.
    public static func map<T>(_ count: Int, _ body: (Int) -> T) -> [T] {
        var results = [T?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { slots in
            let out = slots
            Parallel.forEach(count) { out[$0] = body($0) }
        }
        return results.map { $0! }
    }

    /// Σ over chunks of `partials` (equal lengths), in chunk order.
    public static func sum(_ partials: [[Double]]) -> [Double] {
        guard var total = partials.first else { return [] }
        for part in partials.dropFirst() {
            for i in total.indices { total[i] += part[i] }
        }
        return total
    }

    /// Σ over chunks of `partials` (equal lengths), in chunk order.
    public static func sum(_ partials: [[Float]]) -> [Float] {
        guard var total = partials.first else { return [] }
        let n = total.count
        total.withUnsafeMutableBufferPointer { t in
            for part in partials.dropFirst() {
                part.withUnsafeBufferPointer { p in
                    for i in 0..<n { t[i] += p[i] }
                }
            }
        }
        return total
    }
}

extension FeatureMap {
    /// The same shape and values, as one map from chunks (the inverse of `BatchChunks.split`).
    public static func joinedChunks(_ parts: [FeatureMap]) -> FeatureMap {
        parts.count == 1 ? parts[0] : joined(parts)
    }

    /// Per-channel sums over every pixel of every image, in Double: [C].
    public func channelSums() -> [Double] {
        let c = channels, rows = count * pixels
        var sums = [Double](repeating: 0, count: c)
        values.withUnsafeBufferPointer { xb in
            sums.withUnsafeMutableBufferPointer { sb in
                let xp = xb.baseAddress!, sp = sb.baseAddress!
                for r in 0..<rows {
                    let row = xp + r * c
                    for ch in 0..<c { sp[ch] += Double(row[ch]) }
                }
            }
        }
        return sums
    }
}

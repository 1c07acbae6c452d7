import CSMRandom

/// What `csm inspect --plot` draws of λ̂ against λ_gen, pair by pair: the points (jittered
/// along x so that the λ levels do not stack, at most `maximumPoints` per pair, evenly spread
/// over its samples), the mean λ̂ per λ_gen level, and a y range that holds the data.
public struct ProjectionPlotData: Sendable {
    /// A point of the plot.
    public struct Point: Equatable, Sendable {
        public let x: Double
        public let y: Double
    }

    /// The pairs drawn, in order.
    public let pairs: [PairProjections]
    /// Horizontal jitter: a fraction of the spacing between λ levels, at most 0.05.
    public let jitter: Double
    /// Points drawn per pair at most.
    public let maximumPoints: Int

    public init(_ pairs: [PairProjections], maximumPoints: Int = 2000) {
        self.pairs = pairs
        self.maximumPoints = maximumPoints
        let levels = Set(pairs.flatMap(\.lambdaGen)).sorted()
        let spacing = zip(levels, levels.dropFirst()).map { Double($1 - $0) }.min() ?? 0.1
        jitter = min(0.05, 0.3 * spacing)
    }

    /// The points of pair `index`: (λ_gen + jitter, λ̂); the jitter is a fixed function of
    /// the pair and the sample, so that the same data give the same picture.
    public func points(_ index: Int) -> [Point] {
        let pair = pairs[index]
        let stride = max(1, (pair.lambdaGen.count + maximumPoints - 1) / maximumPoints)
        return Swift.stride(from: 0, to: pair.lambdaGen.count, by: stride).map { i in
            Point(x: Double(pair.lambdaGen[i]) + jitter * (2 * Self.uniform(index, i) - 1), y: Double(pair.lambdaProj[i]))
        }
    }

    /// The mean λ̂ of pair `index` at each λ_gen level, in increasing λ_gen.
    public func means(_ index: Int) -> [Point] {
        let pair = pairs[index]
        var sums: [Float: (Double, Int)] = [:]
        for (gen, proj) in zip(pair.lambdaGen, pair.lambdaProj) {
            let old = sums[gen] ?? (0, 0)
            sums[gen] = (old.0 + Double(proj), old.1 + 1)
        }
        return sums.keys.sorted().map { Point(x: Double($0), y: sums[$0].map { $0.0 / Double($0.1) } ?? 0) }
    }

    /// y from at least [−0.25, 1.25] out to the data, in steps of 0.25, no wider than [−1.5, 2.5].
    public var yRange: ClosedRange<Double> {
        let values = pairs.flatMap(\.lambdaProj).map(Double.init)
        let low = max(-1.5, ((min(-0.2, values.min() ?? 0) - 0.05) * 4).rounded(.down) / 4)
        let high = min(2.5, ((max(1.2, values.max() ?? 1) + 0.05) * 4).rounded(.up) / 4)
        return low...high
    }

    /// A fixed pseudo-random number in [0, 1) for sample `i` of pair `pair` (SplitMix64).
    static func uniform(_ pair: Int, _ i: Int) -> Double {
        SplitMix64.unit(SplitMix64.mix(UInt64(truncatingIfNeeded: pair) &* SplitMix64.increment
                                       &+ UInt64(truncatingIfNeeded: i) &+ 0x632B_E59B_D9B4_E019))
    }
}

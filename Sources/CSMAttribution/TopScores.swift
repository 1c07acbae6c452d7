/// The best `top` training images of one query: indices and scores, highest score first
/// (ties: lower index first).
public struct TopScores: Equatable, Sendable {
    public let indices: [Int]
    public let scores: [Double]

    /// The `top` largest of `scores` (at most scores.count).
    public init(_ scores: ArraySlice<Double>, top: Int) {
        let base = scores.startIndex
        let order = scores.indices.sorted { i, j in
            scores[i] != scores[j] ? scores[i] > scores[j] : i < j
        }.prefix(top)
        indices = order.map { $0 - base }
        self.scores = order.map { scores[$0] }
    }
}

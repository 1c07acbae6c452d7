import CSMShards
import Foundation

/// Calibrated reannotation (CSM; docs/formats/csm-shard.md, "Soft labels"): where a generated sample's classifier features
/// fall between the two class prototypes, turned into a soft label.
public struct Reannotation: Sendable {
    /// Class prototypes μ_k: [K][F].
    public let prototypes: [[Float]]
    /// Sharpness s of the logistic map.
    public let sharpness: Double
    /// Consistency margin δ: λ̂ must lie in [−δ, 1+δ].
    public let margin: Double

    public init(prototypes: [[Float]], sharpness: Double, margin: Double) {
        self.prototypes = prototypes
        self.sharpness = sharpness
        self.margin = margin
    }

    /// The raw projection λ̂ = ((φ − μ_b)·(μ_a − μ_b)) / ||μ_a − μ_b||², in float64.
    public func projection(features: ArraySlice<Float>, a: Int, b: Int) -> Double {
        let ma = prototypes[a], mb = prototypes[b]
        var dot = 0.0, norm = 0.0
        for (j, value) in features.enumerated() {
            let direction = Double(ma[j]) - Double(mb[j])
            dot += (Double(value) - Double(mb[j])) * direction
            norm += direction * direction
        }
        return norm > 0 ? dot / norm : 0.5
    }

    /// The annotation of one sample of pair (a, b) from its features and logits.
    public func annotate(features: ArraySlice<Float>, logits: ArraySlice<Float>, a: Int, b: Int) -> Annotation {
        let projection = self.projection(features: features, a: a, b: b)
        let ratio = SoftLabel.calibratedRatio(projection: projection, sharpness: sharpness)
        // Softmax in float64.
        let values = logits.map(Double.init)
        let top = values.max() ?? 0
        let exps = values.map { exp($0 - top) }
        let total = exps.reduce(0, +)
        let first = logits.startIndex
        var best = 0
        for (k, value) in logits.enumerated() where value > logits[first + best] { best = k }
        let consistent = (best == a || best == b) && projection >= -margin && projection <= 1 + margin
        return Annotation(projection: Float(projection), ratio: Float(ratio), probabilityA: Float(exps[a] / total),
                          probabilityB: Float(exps[b] / total), consistent: consistent, topClass: best)
    }
}

/// The reannotated label of one generated sample.
public struct Annotation: Sendable, Equatable {
    /// λ̂, the raw projection (may fall outside [0, 1]).
    public let projection: Float
    /// λ', the calibrated share of class a.
    public let ratio: Float
    public let probabilityA: Float
    public let probabilityB: Float
    public let consistent: Bool
    /// The classifier's top-1 class.
    public let topClass: Int
}

import Foundation

/// The calibrated ratio and soft label of a mixed sample (docs/formats/csm-shard.md, "Soft
/// labels"), defined once: the reannotation writes `labels` with it and the loader re-derives
/// labels for another sharpness with it. (The Python `csm_shards` package states the same
/// formula in `calibrated_ratio`.)
public enum SoftLabel {
    /// λ' = clip(σ(s·(λ̂ − 0.5)), 0, 1), σ the logistic function; 0.5 when λ̂ is not finite.
    public static func calibratedRatio(projection: Double, sharpness: Double) -> Double {
        guard projection.isFinite else { return 0.5 }
        return min(1, max(0, 1 / (1 + exp(-sharpness * (projection - 0.5)))))
    }

    /// The soft label over `classes` classes: λ' on class a, 1 − λ' on class b (λ' rounded to
    /// float32 first, as the shards store it). `a` and `b` must lie in 0..<classes.
    public static func label(classes: Int, a: Int, b: Int, projection: Double, sharpness: Double) -> [Float] {
        var label = [Float](repeating: 0, count: classes)
        let ratio = Float(calibratedRatio(projection: projection, sharpness: sharpness))
        label[a] += ratio
        label[b] += 1 - ratio
        return label
    }
}

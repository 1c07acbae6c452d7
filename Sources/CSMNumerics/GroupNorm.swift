/// Parameters of a group normalisation layer (PyTorch semantics, biased variance).
public struct GroupNormWeights: Sendable {
    public let channels: Int
    public let groups: Int
    public let epsilon: Float
    public let gamma: [Float]
    public let beta: [Float]

    public init(gamma: [Float], beta: [Float], groups: Int, epsilon: Float) {
        precondition(gamma.count == beta.count && groups > 0 && gamma.count % groups == 0)
        self.channels = gamma.count
        self.groups = groups
        self.epsilon = epsilon
        self.gamma = gamma
        self.beta = beta
    }
}

/// Group normalisation fused with what EDM's blocks do around it.
public enum GroupNorm {
    /// y = act( (GN(x + preBias) · postScale) + postShift ), per image.
    ///
    /// - preBias: [N·C] added to x before normalising (SongUNet's non-adaptive blocks).
    /// - postScale, postShift: [N·C] applied after the affine (DhariwalUNet's adaptive scale).
    /// - silu: apply SiLU at the end.
    public static func apply(_ x: FeatureMap, _ p: GroupNormWeights, preBias: [Float]? = nil,
                             postScale: [Float]? = nil, postShift: [Float]? = nil, silu: Bool) -> FeatureMap {
        precondition(x.channels == p.channels, "group norm: \(x.channels) channels, weights expect \(p.channels)")
        let c = p.channels, hw = x.pixels, groupSize = c / p.groups
        var y = FeatureMap(uninitializedCount: x.count, height: x.height, width: x.width, channels: c)
        var sum = [Float](repeating: 0, count: c)
        var shift = [Float](repeating: 0, count: c)
        var a = [Float](repeating: 0, count: c)
        var b = [Float](repeating: 0, count: c)
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                for n in 0..<x.count {
                    let xp = xb.baseAddress! + n * hw * c
                    let yp = yb.baseAddress! + n * hw * c
                    // Per-channel sums, then group means.
                    sum.withUnsafeMutableBufferPointer { s in
                        for i in 0..<c { s[i] = 0 }
                        for px in 0..<hw {
                            let row = xp + px * c
                            for i in 0..<c { s[i] += row[i] }
                        }
                    }
                    for g in 0..<p.groups {
                        var total: Double = 0
                        for i in (g * groupSize)..<((g + 1) * groupSize) {
                            total += Double(sum[i]) + Double(hw) * Double(preBias?[n * c + i] ?? 0)
                        }
                        let mean = Float(total / Double(hw * groupSize))
                        for i in (g * groupSize)..<((g + 1) * groupSize) { shift[i] = (preBias?[n * c + i] ?? 0) - mean }
                    }
                    // Centred second moments.
                    sum.withUnsafeMutableBufferPointer { s in
                        shift.withUnsafeBufferPointer { d in
                            for i in 0..<c { s[i] = 0 }
                            for px in 0..<hw {
                                let row = xp + px * c
                                for i in 0..<c {
                                    let v = row[i] + d[i]
                                    s[i] += v * v
                                }
                            }
                        }
                    }
                    for g in 0..<p.groups {
                        var total: Double = 0
                        for i in (g * groupSize)..<((g + 1) * groupSize) { total += Double(sum[i]) }
                        let variance = total / Double(hw * groupSize)
                        let rstd = Float(1 / (variance + Double(p.epsilon)).squareRoot())
                        for i in (g * groupSize)..<((g + 1) * groupSize) {
                            let scale = postScale?[n * c + i] ?? 1
                            a[i] = rstd * p.gamma[i] * scale
                            b[i] = (shift[i] * rstd * p.gamma[i] + p.beta[i]) * scale + (postShift?[n * c + i] ?? 0)
                        }
                    }
                    a.withUnsafeBufferPointer { ab in
                        b.withUnsafeBufferPointer { bb in
                            for px in 0..<hw {
                                let row = xp + px * c, out = yp + px * c
                                for i in 0..<c { out[i] = row[i] * ab[i] + bb[i] }
                            }
                        }
                    }
                    if silu { mapInPlace(yp, hw * c) { VectorMath.silu($0) } }
                }
            }
        }
        return y
    }
}

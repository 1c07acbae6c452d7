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
        Profiler.measure("groupnorm") { normalise(x, p, preBias: preBias, postScale: postScale, postShift: postShift, silu: silu) }
    }

    static func normalise(_ x: FeatureMap, _ p: GroupNormWeights, preBias: [Float]?, postScale: [Float]?,
                          postShift: [Float]?, silu: Bool) -> FeatureMap {
        precondition(x.channels == p.channels, "group norm: \(x.channels) channels, weights expect \(p.channels)")
        let c = p.channels, hw = x.pixels, groupSize = c / p.groups, n = x.count
        let zeros = [Float](repeating: 0, count: n * c), ones = [Float](repeating: 1, count: n * c)
        let pre = preBias ?? zeros, scale = postScale ?? ones, shiftAfter = postShift ?? zeros
        var y = FeatureMap(uninitializedCount: n, height: x.height, width: x.width, channels: c)
        let work = UnsafeMutablePointer<Float>.allocate(capacity: 4 * c)
        defer { work.deallocate() }
        let sum = work, shift = work + c, a = work + 2 * c, b = work + 3 * c
        x.values.withUnsafeBufferPointer { xb in
        y.values.withUnsafeMutableBufferPointer { yb in
        pre.withUnsafeBufferPointer { preB in
        scale.withUnsafeBufferPointer { scaleB in
        shiftAfter.withUnsafeBufferPointer { shiftB in
            for image in 0..<n {
                let xp = xb.baseAddress! + image * hw * c, yp = yb.baseAddress! + image * hw * c
                let bias = preB.baseAddress! + image * c
                // Per-channel sums, then group means of x + bias.
                sum.update(repeating: 0, count: c)
                for px in 0..<hw {
                    let row = xp + px * c
                    for i in 0..<c { sum[i] += row[i] }
                }
                for g in 0..<p.groups {
                    var total: Double = 0
                    for i in (g * groupSize)..<((g + 1) * groupSize) { total += Double(sum[i]) + Double(hw) * Double(bias[i]) }
                    let mean = Float(total / Double(hw * groupSize))
                    for i in (g * groupSize)..<((g + 1) * groupSize) { shift[i] = bias[i] - mean }
                }
                // Centred second moments.
                sum.update(repeating: 0, count: c)
                for px in 0..<hw {
                    let row = xp + px * c
                    for i in 0..<c {
                        let v = row[i] + shift[i]
                        sum[i] += v * v
                    }
                }
                let postScale = scaleB.baseAddress! + image * c, postShift = shiftB.baseAddress! + image * c
                for g in 0..<p.groups {
                    var total: Double = 0
                    for i in (g * groupSize)..<((g + 1) * groupSize) { total += Double(sum[i]) }
                    let rstd = Float(1 / (total / Double(hw * groupSize) + Double(p.epsilon)).squareRoot())
                    for i in (g * groupSize)..<((g + 1) * groupSize) {
                        a[i] = rstd * p.gamma[i] * postScale[i]
                        b[i] = (shift[i] * rstd * p.gamma[i] + p.beta[i]) * postScale[i] + postShift[i]
                    }
                }
                for px in 0..<hw {
                    let row = xp + px * c, out = yp + px * c
                    for i in 0..<c { out[i] = row[i] * a[i] + b[i] }
                }
                if silu { mapInPlace(yp, hw * c) { VectorMath.silu($0) } }
            }
        }
        }
        }
        }
        }
        return y
    }
}

/// Parameters of a group normalisation layer (PyTorch semantics, biased variance).
public struct GroupNormWeights: Sendable {
    public let channels: Int
    public let groups: Int
    public let epsilon: Float
    public let gamma: [Float]
    public let beta: [Float]

    public init(gamma: [Float], beta: [Float], groups: Int, epsilon: Float) {
        kernelPrecondition(gamma.count == beta.count && groups > 0 && gamma.count % groups == 0,
                           "group norm: \(gamma.count) scales, \(beta.count) shifts, \(groups) groups")
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
        kernelPrecondition(x.channels == p.channels && x.hasConsistentShape, "group norm: \(x.channels) channels, weights expect \(p.channels)")
        kernelPrecondition([preBias, postScale, postShift].allSatisfy { ($0?.count ?? x.count * p.channels) == x.count * p.channels },
                           "group norm: per-image bias, scale or shift is not \(x.count)×\(p.channels)")
        let c = p.channels, hw = x.pixels, groupSize = c / p.groups, n = x.count
        let zeros = [Float](repeating: 0, count: n * c), ones = [Float](repeating: 1, count: n * c)
        let pre = preBias ?? zeros, scale = postScale ?? ones, shiftAfter = postShift ?? zeros
        var y = FeatureMap(uninitializedCount: n, height: x.height, width: x.width, channels: c)
        let work = UnsafeMutablePointer<Float>.allocate(capacity: 5 * c)
        defer { work.deallocate() }
        let first = work, sums = work + c, squares = work + 2 * c, a = work + 3 * c, b = work + 4 * c
        x.values.withUnsafeBufferPointer { xb in
        y.values.withUnsafeMutableBufferPointer { yb in
        pre.withUnsafeBufferPointer { preB in
        scale.withUnsafeBufferPointer { scaleB in
        shiftAfter.withUnsafeBufferPointer { shiftB in
            for image in 0..<n {
                let xp = xb.baseAddress! + image * hw * c, yp = yb.baseAddress! + image * hw * c
                let bias = preB.baseAddress! + image * c
                // One pass: per-channel sums and squares of x shifted by its first pixel (the
                // shifted-data method, as accurate as centring on the mean when the shift is
                // a typical value), then each group's mean and variance of x + bias in Double.
                first.update(from: xp, count: c)
                accumulate(xp, pixels: hw, channels: c, shift: first, sums: sums, squares: squares)
                let postScale = scaleB.baseAddress! + image * c, postShift = shiftB.baseAddress! + image * c
                let count = Double(hw * groupSize)
                for g in 0..<p.groups {
                    let members = (g * groupSize)..<((g + 1) * groupSize)
                    var total: Double = 0
                    for i in members { total += Double(sums[i]) + Double(hw) * (Double(first[i]) + Double(bias[i])) }
                    let mean = total / count
                    var deviations: Double = 0
                    for i in members {
                        let d = Double(first[i]) + Double(bias[i]) - mean
                        deviations += Double(squares[i]) + 2 * d * Double(sums[i]) + Double(hw) * d * d
                    }
                    let rstd = Float(1 / (max(0, deviations) / count + Double(p.epsilon)).squareRoot())
                    for i in members {
                        let shift = Float(Double(bias[i]) - mean)
                        a[i] = rstd * p.gamma[i] * postScale[i]
                        b[i] = (shift * rstd * p.gamma[i] + p.beta[i]) * postScale[i] + postShift[i]
                    }
                }
                scaleAndShift(xp, pixels: hw, channels: c, a: a, b: b, silu: silu, into: yp)
            }
        }
        }
        }
        }
        }
        return y
    }

    typealias V = SIMD16<Float>

    /// sums[i] = Σ_px (x[px, i] − shift[i]) and squares[i] = Σ_px (x[px, i] − shift[i])², in one pass.
    @inline(__always)
    static func accumulate(_ x: UnsafePointer<Float>, pixels: Int, channels c: Int, shift: UnsafeMutablePointer<Float>,
                           sums: UnsafeMutablePointer<Float>, squares: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 16 <= c {
            var total = V(), totalSquares = V()
            let k = UnsafeRawPointer(shift + i).loadUnaligned(as: V.self)
            for px in 0..<pixels {
                let v = UnsafeRawPointer(x + px * c + i).loadUnaligned(as: V.self) - k
                total += v
                totalSquares += v * v
            }
            UnsafeMutableRawPointer(sums + i).storeBytes(of: total, as: V.self)
            UnsafeMutableRawPointer(squares + i).storeBytes(of: totalSquares, as: V.self)
            i += 16
        }
        for j in i..<c {
            var total: Float = 0, totalSquares: Float = 0
            for px in 0..<pixels {
                let v = x[px * c + j] - shift[j]
                total += v
                totalSquares += v * v
            }
            sums[j] = total
            squares[j] = totalSquares
        }
    }

    /// y = x·a + b per channel, then SiLU if asked.
    @inline(__always)
    static func scaleAndShift(_ x: UnsafePointer<Float>, pixels: Int, channels c: Int, a: UnsafeMutablePointer<Float>,
                              b: UnsafeMutablePointer<Float>, silu: Bool, into y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 16 <= c {
            let va = UnsafeRawPointer(a + i).loadUnaligned(as: V.self), vb = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            for px in 0..<pixels {
                var v = UnsafeRawPointer(x + px * c + i).loadUnaligned(as: V.self) * va + vb
                if silu { v = VectorMath.silu(v) }
                UnsafeMutableRawPointer(y + px * c + i).storeBytes(of: v, as: V.self)
            }
            i += 16
        }
        if i < c {
            for px in 0..<pixels {
                for j in i..<c {
                    let v = x[px * c + j] * a[j] + b[j]
                    y[px * c + j] = silu ? VectorMath.silu(v) : v
                }
            }
        }
    }
}

/// What `GroupNorm.backward` returns: dL/d of every input of the fused group norm
/// y = act((GN(x + preBias) · postScale) + postShift).
public struct GroupNormGradients: Sendable {
    /// dL/dx, the input's shape [N, H, W, C].
    public var dx: FeatureMap
    /// dL/dγ [C], summed over the batch.
    public var dGamma: [Float]
    /// dL/dβ [C], summed over the batch.
    public var dBeta: [Float]
    /// dL/dpreBias [N·C]; nil when the forward had no preBias.
    public var dPreBias: [Float]?
    /// dL/dpostScale [N·C]; nil when the forward had no postScale.
    public var dPostScale: [Float]?
    /// dL/dpostShift [N·C]; nil when the forward had no postShift.
    public var dPostShift: [Float]?
}

extension GroupNorm {
    /// Backward of `apply`: given dy = dL/dy and the forward's inputs, the gradients of L
    /// with respect to x, γ, β and the optional per-image preBias, postScale and postShift.
    ///
    /// Recomputes the group statistics from x (no forward state is kept). Per image, with
    /// x̂ = (x + preBias − mean_g)·r_g, r_g = 1/√(var_g + ε), u = (γ·x̂ + β)·postScale + postShift
    /// and du = dy·act′(u):
    ///
    ///     dβ = Σ du·postScale          dγ = Σ du·postScale·x̂
    ///     dpostShift = Σ du            dpostScale = Σ du·(γ·x̂ + β)
    ///     dx = r_g·(g − mean_g(g) − x̂·mean_g(g·x̂)),  g = du·postScale·γ
    ///     dpreBias = Σ dx
    ///
    /// (Σ over pixels, and over images for γ and β; mean_g over the group's channels × pixels.)
    public static func backward(_ dy: FeatureMap, input x: FeatureMap, _ p: GroupNormWeights, preBias: [Float]? = nil,
                                postScale: [Float]? = nil, postShift: [Float]? = nil, silu: Bool) -> GroupNormGradients {
        Profiler.measure("groupnorm-backward") {
            gradients(dy, x, p, preBias: preBias, postScale: postScale, postShift: postShift, silu: silu)
        }
    }

    static func gradients(_ dy: FeatureMap, _ x: FeatureMap, _ p: GroupNormWeights, preBias: [Float]?, postScale: [Float]?,
                          postShift: [Float]?, silu: Bool) -> GroupNormGradients {
        let n = x.count, c = p.channels, hw = x.pixels, groupSize = c / p.groups
        kernelPrecondition(x.channels == c && x.hasConsistentShape, "group norm gradient: \(x.channels) channels, weights expect \(c)")
        kernelPrecondition(dy.count == n && dy.height == x.height && dy.width == x.width && dy.channels == c && dy.hasConsistentShape,
                           "group norm gradient: dy is \(dy.count)×\(dy.height)×\(dy.width)×\(dy.channels), x is \(n)×\(x.height)×\(x.width)×\(c)")
        kernelPrecondition([preBias, postScale, postShift].allSatisfy { ($0?.count ?? n * c) == n * c },
                           "group norm gradient: per-image bias, scale or shift is not \(n)×\(c)")
        let scale = postScale ?? [Float](repeating: 1, count: n * c)
        let shift = postShift ?? [Float](repeating: 0, count: n * c)
        let (xhat, inverseStd) = standardised(x, p, preBias: preBias)
        let rows = max(1, x.width)  // pixels summed in Float before each Double step

        // du = dy·act′(u), u the pre-activation output.
        var du = dy
        if silu {
            var u = FeatureMap(uninitializedCount: n, height: x.height, width: x.width, channels: c)
            u.values.withUnsafeMutableBufferPointer { ub in
                let up = ub.baseAddress!
                for image in 0..<n {
                    // u = x̂·a + b per channel.
                    let a = (0..<c).map { p.gamma[$0] * scale[image * c + $0] }
                    let b = (0..<c).map { p.beta[$0] * scale[image * c + $0] + shift[image * c + $0] }
                    for px in 0..<hw {
                        let row = (image * hw + px) * c
                        for ch in 0..<c { up[row + ch] = xhat[row + ch] * a[ch] + b[ch] }
                    }
                }
            }
            du = SiLU.backward(dy, input: u)
        }

        // Σ du and Σ du·x̂ per image and channel.
        var sumDu = [Double](repeating: 0, count: n * c), sumDuXhat = sumDu
        du.values.withUnsafeBufferPointer { db in
            xhat.withUnsafeBufferPointer { hb in
                let dp = db.baseAddress!, hp = hb.baseAddress!
                var t = [Float](repeating: 0, count: c), v = t
                for image in 0..<n {
                    forEachRun(of: hw, length: rows) { run in
                        for ch in 0..<c { t[ch] = 0; v[ch] = 0 }
                        for q in run {
                            let row = (image * hw + q) * c
                            for ch in 0..<c {
                                let g = dp[row + ch]
                                t[ch] += g
                                v[ch] += g * hp[row + ch]
                            }
                        }
                        for ch in 0..<c {
                            sumDu[image * c + ch] += Double(t[ch])
                            sumDuXhat[image * c + ch] += Double(v[ch])
                        }
                    }
                }
            }
        }

        // Parameter gradients.
        var dGamma = [Double](repeating: 0, count: c), dBeta = dGamma
        var dPostScale = [Float](repeating: 0, count: n * c)
        for image in 0..<n {
            for ch in 0..<c {
                let k = image * c + ch, s = Double(scale[k])
                dGamma[ch] += s * sumDuXhat[k]
                dBeta[ch] += s * sumDu[k]
                dPostScale[k] = Float(Double(p.gamma[ch]) * sumDuXhat[k] + Double(p.beta[ch]) * sumDu[k])
            }
        }

        // dx = r·(γ·s·du − mean(γ·s·du) − x̂·mean(γ·s·du·x̂)) per group, and dpreBias = Σ_px dx.
        var dx = FeatureMap(uninitializedCount: n, height: x.height, width: x.width, channels: c)
        var dPreBias = [Double](repeating: 0, count: n * c)
        var coefficient = [Float](repeating: 0, count: c), meanG = coefficient, meanGXhat = coefficient
        dx.values.withUnsafeMutableBufferPointer { ob in
            du.values.withUnsafeBufferPointer { db in
                xhat.withUnsafeBufferPointer { hb in
                    let op = ob.baseAddress!, dp = db.baseAddress!, hp = hb.baseAddress!
                    var rowSums = [Float](repeating: 0, count: c)
                    for image in 0..<n {
                        for group in 0..<p.groups {
                            let channels = (group * groupSize)..<((group + 1) * groupSize)
                            var total: Double = 0, totalXhat: Double = 0
                            for ch in channels {
                                let weight = Double(p.gamma[ch]) * Double(scale[image * c + ch])
                                total += weight * sumDu[image * c + ch]
                                totalXhat += weight * sumDuXhat[image * c + ch]
                            }
                            let r = inverseStd[image * p.groups + group], count = Double(groupSize * hw)
                            for ch in channels {
                                coefficient[ch] = Float(r * Double(p.gamma[ch]) * Double(scale[image * c + ch]))
                                meanG[ch] = Float(r * total / count)
                                meanGXhat[ch] = Float(r * totalXhat / count)
                            }
                        }
                        forEachRun(of: hw, length: rows) { run in
                            for ch in 0..<c { rowSums[ch] = 0 }
                            for q in run {
                                let row = (image * hw + q) * c
                                for ch in 0..<c {
                                    let v = coefficient[ch] * dp[row + ch] - meanG[ch] - hp[row + ch] * meanGXhat[ch]
                                    op[row + ch] = v
                                    rowSums[ch] += v
                                }
                            }
                            for ch in 0..<c { dPreBias[image * c + ch] += Double(rowSums[ch]) }
                        }
                    }
                }
            }
        }
        return GroupNormGradients(dx: dx, dGamma: dGamma.map { Float($0) }, dBeta: dBeta.map { Float($0) },
                                  dPreBias: preBias == nil ? nil : dPreBias.map { Float($0) },
                                  dPostScale: postScale == nil ? nil : dPostScale,
                                  dPostShift: postShift == nil ? nil : sumDu.map { Float($0) })
    }

    /// x̂ = (x + preBias − mean_g)/√(var_g + ε) (NHWC, like x) and every (image, group)'s
    /// 1/√(var_g + ε), with the forward's statistics (`moments`, biased variance).
    static func standardised(_ x: FeatureMap, _ p: GroupNormWeights, preBias: [Float]?) -> (xhat: [Float], inverseStd: [Double]) {
        let n = x.count, c = p.channels, hw = x.pixels, groupSize = c / p.groups
        let bias = preBias ?? [Float](repeating: 0, count: n * c)
        var xhat = [Float](repeating: 0, count: x.values.count)
        var inverseStd = [Double](repeating: 0, count: n * p.groups)
        x.values.withUnsafeBufferPointer { xb in
            xhat.withUnsafeMutableBufferPointer { hb in
                bias.withUnsafeBufferPointer { bb in
                    let xp = xb.baseAddress!, hp = hb.baseAddress!
                    var scaleRow = [Float](repeating: 0, count: c), shiftRow = scaleRow
                    for image in 0..<n {
                        let imageBias = bb.baseAddress! + image * c
                        let (mean, r) = moments(xp + image * hw * c, pixels: hw, run: x.width, bias: imageBias, p)
                        for group in 0..<p.groups {
                            inverseStd[image * p.groups + group] = r[group]
                            for ch in (group * groupSize)..<((group + 1) * groupSize) {
                                scaleRow[ch] = Float(r[group])
                                shiftRow[ch] = Float((Double(imageBias[ch]) - mean[group]) * r[group])
                            }
                        }
                        scaleAndShift(xp + image * hw * c, pixels: hw, channels: c, a: scaleRow, b: shiftRow, silu: false,
                                      into: hp + image * hw * c)
                    }
                }
            }
        }
        return (xhat, inverseStd)
    }
}

/// SiLU, x·σ(x) with σ the logistic sigmoid, elementwise on NHWC maps, and its backward.
public enum SiLU {
    /// x·σ(x) (`VectorMath.silu`, what `GroupNorm.apply(silu: true)` uses).
    public static func forward(_ x: FeatureMap) -> FeatureMap {
        var y = x
        y.applySiLU()
        return y
    }

    /// dL/dx = dy·σ(x)·(1 + x·(1 − σ(x))), x the forward's input.
    public static func backward(_ dy: FeatureMap, input x: FeatureMap) -> FeatureMap {
        kernelPrecondition(dy.values.count == x.values.count && dy.hasConsistentShape, "SiLU gradient: shapes disagree")
        typealias V = SIMD16<Float>
        @inline(__always) func derivative(_ v: V) -> V {
            let s = 1 / (1 + VectorMath.exp(-v))
            return s * (1 + v * (1 - s))
        }
        var dx = dy
        let count = dx.values.count
        guard count > 0 else { return dx }
        dx.values.withUnsafeMutableBufferPointer { d in
            x.values.withUnsafeBufferPointer { xb in
                let dp = d.baseAddress!, xp = xb.baseAddress!
                var i = 0
                while i + 16 <= count {
                    let g = UnsafeRawPointer(dp + i).loadUnaligned(as: V.self), v = UnsafeRawPointer(xp + i).loadUnaligned(as: V.self)
                    UnsafeMutableRawPointer(dp + i).storeBytes(of: g * derivative(v), as: V.self)
                    i += 16
                }
                if i < count {
                    var g = V(), v = V()
                    for j in 0..<(count - i) { g[j] = dp[i + j]; v[j] = xp[i + j] }
                    let r = g * derivative(v)
                    for j in 0..<(count - i) { dp[i + j] = r[j] }
                }
            }
        }
        return dx
    }
}

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
        let work = UnsafeMutablePointer<Float>.allocate(capacity: 2 * c)
        defer { work.deallocate() }
        let a = work, b = work + c
        x.values.withUnsafeBufferPointer { xb in
        y.values.withUnsafeMutableBufferPointer { yb in
        pre.withUnsafeBufferPointer { preB in
        scale.withUnsafeBufferPointer { scaleB in
        shiftAfter.withUnsafeBufferPointer { shiftB in
            for image in 0..<n {
                let xp = xb.baseAddress! + image * hw * c, yp = yb.baseAddress! + image * hw * c
                let bias = preB.baseAddress! + image * c
                let (mean, inverseStd) = moments(xp, pixels: hw, run: x.width, bias: bias, p)
                let postScale = scaleB.baseAddress! + image * c, postShift = shiftB.baseAddress! + image * c
                for g in 0..<p.groups {
                    let rstd = Float(inverseStd[g])
                    for i in (g * groupSize)..<((g + 1) * groupSize) {
                        let shift = Float(Double(bias[i]) - mean[g])
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

    /// Each group's mean of x + bias and 1/√(var + ε) (biased variance) over one image's
    /// `pixels` pixels (NHWC rows of `p.channels` at `x`, `bias` per channel), in one pass:
    /// per channel the sums and squares of x shifted by its first pixel (the shifted-data
    /// method, as accurate as centring on the mean when the shift is a typical value), in
    /// Float over runs of `run` pixels and in Double across runs; combined per group in Double.
    static func moments(_ x: UnsafePointer<Float>, pixels: Int, run: Int, bias: UnsafePointer<Float>,
                        _ p: GroupNormWeights) -> (mean: [Double], inverseStd: [Double]) {
        let c = p.channels, groupSize = c / p.groups
        let first = UnsafeMutablePointer<Float>.allocate(capacity: 3 * c)
        defer { first.deallocate() }
        first.update(from: x, count: c)
        let sums = first + c, squares = first + 2 * c
        var totals = [Double](repeating: 0, count: c), totalSquares = totals
        forEachRun(of: pixels, length: max(1, run)) { range in
            accumulate(x + range.lowerBound * c, pixels: range.count, channels: c, shift: first, sums: sums, squares: squares)
            for i in 0..<c {
                totals[i] += Double(sums[i])
                totalSquares[i] += Double(squares[i])
            }
        }
        let count = Double(pixels * groupSize)
        var mean = [Double](repeating: 0, count: p.groups), inverseStd = mean
        for g in 0..<p.groups {
            let members = (g * groupSize)..<((g + 1) * groupSize)
            var total: Double = 0
            for i in members { total += totals[i] + Double(pixels) * (Double(first[i]) + Double(bias[i])) }
            mean[g] = total / count
            var deviations: Double = 0
            for i in members {
                let d = Double(first[i]) + Double(bias[i]) - mean[g]
                deviations += totalSquares[i] + 2 * d * totals[i] + Double(pixels) * d * d
            }
            inverseStd[g] = 1 / (max(0, deviations) / count + Double(p.epsilon)).squareRoot()
        }
        return (mean, inverseStd)
    }

    /// Calls `body` with consecutive runs of at most `length` of the indices 0 ..< `pixels`:
    /// the stretches summed in Float before each step in Double.
    @inline(__always)
    static func forEachRun(of pixels: Int, length: Int, _ body: (Range<Int>) -> Void) {
        var start = 0
        while start < pixels {
            let end = min(pixels, start + length)
            body(start..<end)
            start = end
        }
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
    static func scaleAndShift(_ x: UnsafePointer<Float>, pixels: Int, channels c: Int, a: UnsafePointer<Float>,
                              b: UnsafePointer<Float>, silu: Bool, into y: UnsafeMutablePointer<Float>) {
        // Pixel by pixel, so that x and y stream through memory once; a and b stay in L1.
        let vectorChannels = c / 16 * 16
        for px in 0..<pixels {
            var i = 0
            while i < vectorChannels {
                let va = UnsafeRawPointer(a + i).loadUnaligned(as: V.self), vb = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
                var v = UnsafeRawPointer(x + px * c + i).loadUnaligned(as: V.self) * va + vb
                if silu { v = VectorMath.silu(v) }
                UnsafeMutableRawPointer(y + px * c + i).storeBytes(of: v, as: V.self)
                i += 16
            }
        }
        let i = vectorChannels
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

/// EDM's 2× resampling with a separable FIR filter f (e.g. [1,1] or [1,3,3,1]),
/// applied to every channel alike, on NHWC maps.
public struct ResampleFilter: Sendable, Equatable {
    /// The 1-D taps normalised to sum 1 (the 2-D filter is their outer product).
    public let taps: [Float]

    public init(_ taps: [Float]) {
        let total = taps.reduce(0, +)
        self.taps = taps.map { $0 / total }
    }

    /// (len − 1) / 2: EDM's padding for the plain (unfused) resample.
    public var padding: Int { (taps.count - 1) / 2 }

    /// Downsample by 2: depthwise conv with f⊗f, stride 2, zero padding `padding`.
    /// Output size (H + 2·padding − len) / 2 + 1.
    public func down(_ x: FeatureMap, padding: Int) -> FeatureMap {
        let l = taps.count, c = x.channels
        let oh = (x.height + 2 * padding - l) / 2 + 1, ow = (x.width + 2 * padding - l) / 2 + 1
        kernelPrecondition(x.hasConsistentShape && padding >= 0 && x.height + 2 * padding >= l && x.width + 2 * padding >= l,
                           "resample down: \(x.height)×\(x.width) with padding \(padding) is smaller than the \(l)-tap filter")
        var y = FeatureMap(count: x.count, height: oh, width: ow, channels: c)
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                for n in 0..<x.count {
                    let src = xb.baseAddress! + n * x.pixels * c, dst = yb.baseAddress! + n * oh * ow * c
                    forEachLink(small: (oh, ow), large: (x.height, x.width), padding: padding, gain: 1) { small, large, weight in
                        let out = dst + small * c, input = src + large * c
                        for i in 0..<c { out[i] += weight * input[i] }
                    }
                }
            }
        }
        return y
    }

    /// Upsample by 2: transposed depthwise conv with 4·f⊗f, stride 2, padding `padding`.
    /// Output size 2·(H − 1) − 2·padding + len.
    public func up(_ x: FeatureMap, padding: Int) -> FeatureMap {
        let l = taps.count, c = x.channels
        let oh = 2 * (x.height - 1) - 2 * padding + l, ow = 2 * (x.width - 1) - 2 * padding + l
        kernelPrecondition(x.hasConsistentShape && padding >= 0 && oh >= 0 && ow >= 0,
                           "resample up: \(x.height)×\(x.width) with padding \(padding) gives no output")
        var y = FeatureMap(count: x.count, height: oh, width: ow, channels: c)
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                for n in 0..<x.count {
                    let src = xb.baseAddress! + n * x.pixels * c, dst = yb.baseAddress! + n * oh * ow * c
                    forEachLink(small: (x.height, x.width), large: (oh, ow), padding: padding, gain: 4) { small, large, weight in
                        let out = dst + large * c, input = src + small * c
                        for i in 0..<c { out[i] += weight * input[i] }
                    }
                }
            }
        }
        return y
    }

    /// Every pair of pixels the 2× resampling connects, in a fixed order: for each pixel
    /// (sy, sx) of the small map (row-major) and taps ky, kx, the large-map pixel
    /// (2·sy − padding + ky, 2·sx − padding + kx) when it lies inside, with weight
    /// gain·f[ky]·f[kx]. `down` reads large and writes small, `up` the other way round; their
    /// backward passes (ResampleGradient.swift) walk the same links the opposite way.
    @inline(__always)
    func forEachLink(small: (height: Int, width: Int), large: (height: Int, width: Int), padding: Int, gain: Float,
                     _ link: (_ small: Int, _ large: Int, _ weight: Float) -> Void) {
        let l = taps.count
        for sy in 0..<small.height {
            for sx in 0..<small.width {
                for ky in 0..<l {
                    let ly = 2 * sy - padding + ky
                    guard ly >= 0 && ly < large.height else { continue }
                    for kx in 0..<l {
                        let lx = 2 * sx - padding + kx
                        guard lx >= 0 && lx < large.width else { continue }
                        link(sy * small.width + sx, ly * large.width + lx, gain * taps[ky] * taps[kx])
                    }
                }
            }
        }
    }
}

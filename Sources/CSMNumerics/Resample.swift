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
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let out = yb.baseAddress! + ((n * oh + oy) * ow + ox) * c
                            for ky in 0..<l {
                                let iy = 2 * oy - padding + ky
                                guard iy >= 0 && iy < x.height else { continue }
                                for kx in 0..<l {
                                    let ix = 2 * ox - padding + kx
                                    guard ix >= 0 && ix < x.width else { continue }
                                    let weight = taps[ky] * taps[kx]
                                    let src = xb.baseAddress! + ((n * x.height + iy) * x.width + ix) * c
                                    for i in 0..<c { out[i] += weight * src[i] }
                                }
                            }
                        }
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
                    for iy in 0..<x.height {
                        for ix in 0..<x.width {
                            let src = xb.baseAddress! + ((n * x.height + iy) * x.width + ix) * c
                            for ky in 0..<l {
                                let oy = 2 * iy + ky - padding
                                guard oy >= 0 && oy < oh else { continue }
                                for kx in 0..<l {
                                    let ox = 2 * ix + kx - padding
                                    guard ox >= 0 && ox < ow else { continue }
                                    let weight = 4 * taps[ky] * taps[kx]
                                    let out = yb.baseAddress! + ((n * oh + oy) * ow + ox) * c
                                    for i in 0..<c { out[i] += weight * src[i] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}

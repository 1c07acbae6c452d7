/// Backward passes of `ResampleFilter`'s FIR resampling. Both directions are linear maps
/// with fixed taps, so dL/dx is the transposed map applied to dy: `down` gathers each output
/// from a len×len window at stride 2, so its backward scatters dy back through the same
/// windows; `up` scatters each input into a len×len window at stride 2, so its backward
/// gathers dy from those windows. Every channel alike, NHWC.
extension ResampleFilter {
    /// dL/dx for y = `down(x, padding:)`, x of `inputHeight`×`inputWidth` (same images and
    /// channels as dy):
    ///
    ///     dx[iy, ix] = Σ f[ky]·f[kx]·dy[oy, ox]  over 2·oy − padding + ky = iy, 2·ox − padding + kx = ix
    ///
    /// Input rows or columns that no output window reaches (odd sizes) get zero.
    public func downBackward(_ dy: FeatureMap, inputHeight h: Int, inputWidth w: Int, padding: Int) -> FeatureMap {
        Profiler.measure("resample-down-dx") { downInputGradient(dy, height: h, width: w, padding: padding) }
    }

    /// dL/dx for y = `up(x, padding:)`, x of `inputHeight`×`inputWidth` (same images and
    /// channels as dy):
    ///
    ///     dx[iy, ix] = Σ 4·f[ky]·f[kx]·dy[2·iy + ky − padding, 2·ix + kx − padding]  over taps inside dy
    public func upBackward(_ dy: FeatureMap, inputHeight h: Int, inputWidth w: Int, padding: Int) -> FeatureMap {
        Profiler.measure("resample-up-dx") { upInputGradient(dy, height: h, width: w, padding: padding) }
    }

    func downInputGradient(_ dy: FeatureMap, height h: Int, width w: Int, padding: Int) -> FeatureMap {
        let l = taps.count, oh = dy.height, ow = dy.width
        kernelPrecondition(dy.hasConsistentShape && padding >= 0 && h >= 0 && w >= 0 && h + 2 * padding >= l && w + 2 * padding >= l,
                           "resample down gradient: \(h)×\(w) with padding \(padding) is smaller than the \(l)-tap filter")
        kernelPrecondition(oh == (h + 2 * padding - l) / 2 + 1 && ow == (w + 2 * padding - l) / 2 + 1,
                           "resample down gradient: dy is \(oh)×\(ow), the forward of \(h)×\(w) with padding \(padding) gives "
                           + "\((h + 2 * padding - l) / 2 + 1)×\((w + 2 * padding - l) / 2 + 1)")
        return adjoint(dy, height: h, width: w, padding: padding, up: false)
    }

    func upInputGradient(_ dy: FeatureMap, height h: Int, width w: Int, padding: Int) -> FeatureMap {
        let l = taps.count, oh = dy.height, ow = dy.width
        kernelPrecondition(dy.hasConsistentShape && padding >= 0 && h >= 0 && w >= 0,
                           "resample up gradient: \(h)×\(w) with padding \(padding)")
        kernelPrecondition(oh == 2 * (h - 1) - 2 * padding + l && ow == 2 * (w - 1) - 2 * padding + l,
                           "resample up gradient: dy is \(oh)×\(ow), the forward of \(h)×\(w) with padding \(padding) gives "
                           + "\(2 * (h - 1) - 2 * padding + l)×\(2 * (w - 1) - 2 * padding + l)")
        return adjoint(dy, height: h, width: w, padding: padding, up: true)
    }

    /// dx (h × w) from dy along every filter link, each link's weight times dy's value at
    /// one end added to dx's at the other: down's dx is the large side, up's the small one.
    private func adjoint(_ dy: FeatureMap, height h: Int, width w: Int, padding: Int, up: Bool) -> FeatureMap {
        let c = dy.channels, oh = dy.height, ow = dy.width
        var dx = FeatureMap(count: dy.count, height: h, width: w, channels: c)
        guard !dx.values.isEmpty && !dy.values.isEmpty else { return dx }
        dy.values.withUnsafeBufferPointer { db in
            dx.values.withUnsafeMutableBufferPointer { xb in
                for n in 0..<dy.count {
                    let src = db.baseAddress! + n * oh * ow * c, dst = xb.baseAddress! + n * h * w * c
                    forEachLink(small: up ? (h, w) : (oh, ow), large: up ? (oh, ow) : (h, w), padding: padding, gain: up ? 4 : 1) {
                        small, large, weight in
                        let out = dst + (up ? small : large) * c, gradient = src + (up ? large : small) * c
                        for i in 0..<c { out[i] += weight * gradient[i] }
                    }
                }
            }
        }
        return dx
    }
}

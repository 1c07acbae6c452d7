/// Global average pooling (NHWC → [n, C]) and its backward pass.
public enum GlobalAveragePool {
    /// The mean over all pixels of each image: [n, C], row-major.
    public static func forward(_ x: FeatureMap) -> [Float] {
        kernelPrecondition(x.hasConsistentShape && x.pixels > 0,
                           "average pool: empty or inconsistent map")
        let c = x.channels, plane = x.pixels
        var out = [Float](repeating: 0, count: x.count * c)
        x.values.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                let xp = xb.baseAddress!, op = ob.baseAddress!
                for n in 0..<x.count {
                    let row = op + n * c
                    for p in 0..<plane {
                        let source = xp + (n * plane + p) * c
                        for ch in 0..<c { row[ch] += source[ch] }
                    }
                    let scale = 1 / Float(plane)
                    for ch in 0..<c { row[ch] *= scale }
                }
            }
        }
        return out
    }

    /// dL/dx for images of `height`×`width`: every pixel gets dφ[n, c] / (height·width).
    /// `dy` holds rows `images` of the batch's [n, C] gradient.
    public static func backward(_ dy: [Float], images: Range<Int>, height: Int, width: Int, channels c: Int) -> FeatureMap {
        kernelPrecondition(dy.count >= images.upperBound * c, "average pool gradient: too few rows")
        var dx = FeatureMap(uninitializedCount: images.count, height: height, width: width, channels: c)
        let plane = height * width, scale = 1 / Float(plane)
        dx.values.withUnsafeMutableBufferPointer { xb in
            dy.withUnsafeBufferPointer { db in
                for (i, n) in images.enumerated() {
                    for p in 0..<plane {
                        let dst = xb.baseAddress! + (i * plane + p) * c
                        for ch in 0..<c { dst[ch] = db[n * c + ch] * scale }
                    }
                }
            }
        }
        return dx
    }
}

/// 3×3 max pooling, stride 2, padding 1 (torchvision's ImageNet stem), with the argmax
/// kept for the backward pass. Ties go to the first maximum in row-major window order, as
/// PyTorch's CPU kernel does.
public enum MaxPool3x3 {
    /// The pooled map and, per output value, the flat index (within its image) of the input value chosen.
    public static func forward(_ x: FeatureMap) -> (y: FeatureMap, argmax: [Int32]) {
        let oh = Convolution.outputSize(x.height, kernel: 3, stride: 2, padding: 1)
        let ow = Convolution.outputSize(x.width, kernel: 3, stride: 2, padding: 1)
        let c = x.channels, h = x.height, w = x.width
        var y = FeatureMap(uninitializedCount: x.count, height: oh, width: ow, channels: c)
        var argmax = [Int32](repeating: 0, count: y.values.count)
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                argmax.withUnsafeMutableBufferPointer { ab in
                    let xp = xb.baseAddress!, yp = yb.baseAddress!, ap = ab.baseAddress!
                    for n in 0..<x.count {
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let o = ((n * oh + oy) * ow + ox) * c
                                for ch in 0..<c {
                                    var best = -Float.infinity, at = -1
                                    for iy in max(0, 2 * oy - 1)...min(h - 1, 2 * oy + 1) {
                                        for ix in max(0, 2 * ox - 1)...min(w - 1, 2 * ox + 1) {
                                            let i = (iy * w + ix) * c + ch
                                            let v = xp[n * h * w * c + i]
                                            if v > best || at < 0 || v.isNaN { best = v; at = i }
                                        }
                                    }
                                    yp[o + ch] = best
                                    ap[o + ch] = Int32(at)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (y, argmax)
    }

    /// dL/dx: each output gradient added onto the input value the forward chose.
    public static func backward(_ dy: FeatureMap, argmax: [Int32], height: Int, width: Int) -> FeatureMap {
        kernelPrecondition(argmax.count == dy.values.count, "max-pool gradient: argmax does not match the gradient")
        var dx = FeatureMap(count: dy.count, height: height, width: width, channels: dy.channels)
        let per = dy.pixels * dy.channels, inputPer = height * width * dy.channels
        dx.values.withUnsafeMutableBufferPointer { xb in
            dy.values.withUnsafeBufferPointer { db in
                for n in 0..<dy.count {
                    for j in 0..<per { xb[n * inputPer + Int(argmax[n * per + j])] += db[n * per + j] }
                }
            }
        }
        return dx
    }
}

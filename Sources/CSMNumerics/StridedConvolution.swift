/// 2-D convolution with any stride and zero padding on NHWC maps, by im2col + GEMM: what
/// ResNet's downsampling convolutions (3×3 stride 2, 1×1 stride 2, the 7×7 stride 2 stem)
/// need. Stride 1 is handed to `Convolution.apply`.
public enum StridedConvolution {
    /// Output side length for an input side of `size`, PyTorch's rule:
    /// ⌊(size + 2·padding − kernel) / stride⌋ + 1.
    public static func outputSize(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        (size + 2 * padding - kernel) / stride + 1
    }

    /// y = conv(x, w) + b with `stride` and `padding` pixels of zeros on each side.
    public static func apply(_ x: FeatureMap, _ w: ConvolutionWeights, stride: Int, padding: Int) -> FeatureMap {
        precondition(stride >= 1 && padding >= 0, "convolution: stride must be positive and padding non-negative")
        if stride == 1 { return Convolution.apply(x, w, padding: padding) }
        return Profiler.measure("conv\(w.kernel)x\(w.kernel)/\(stride)") { convolve(x, w, stride: stride, padding: padding) }
    }

    static func convolve(_ x: FeatureMap, _ w: ConvolutionWeights, stride: Int, padding: Int) -> FeatureMap {
        precondition(x.channels == w.inputChannels, "convolution: \(x.channels) input channels, weights expect \(w.inputChannels)")
        let k = w.kernel, cin = w.inputChannels, cout = w.outputChannels
        precondition(x.height + 2 * padding >= k && x.width + 2 * padding >= k, "convolution: input smaller than the kernel")
        let oh = outputSize(x.height, kernel: k, stride: stride, padding: padding)
        let ow = outputSize(x.width, kernel: k, stride: stride, padding: padding)
        var y = FeatureMap(uninitializedCount: x.count, height: oh, width: ow, channels: cout)
        let rows = x.count * oh * ow
        guard rows > 0 else { return y }
        let columns = k * k * cin
        let chunk = Convolution.chunkRows(columns: columns, rows: rows)
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                w.packed.withUnsafeBufferPointer { wb in
                    let xp = xb.baseAddress!, yp = yb.baseAddress!, wp = wb.baseAddress!
                    let col = UnsafeMutablePointer<Float>.allocate(capacity: chunk * columns)
                    defer { col.deallocate() }
                    var start = 0
                    while start < rows {
                        let count = min(chunk, rows - start)
                        im2col(xp, x, kernel: k, stride: stride, padding: padding, outHeight: oh, outWidth: ow,
                               rows: start..<(start + count), into: col)
                        BLAS.sgemm(m: count, n: cout, k: columns, a: col, lda: columns, b: wp, ldb: cout,
                                   c: yp + start * cout, ldc: cout)
                        start += count
                    }
                    if let bias = w.bias {
                        bias.withUnsafeBufferPointer { bb in addRowBias(yp, rows: rows, bias: bb.baseAddress!, channels: cout) }
                    }
                }
            }
        }
        return y
    }

    /// Fills `col` with the k×k patches (NHWC order) of output rows `rows`, the patch of
    /// output pixel (oy, ox) starting at input pixel (oy·stride − padding, ox·stride − padding).
    static func im2col(_ xp: UnsafePointer<Float>, _ x: FeatureMap, kernel k: Int, stride: Int, padding: Int,
                       outHeight oh: Int, outWidth ow: Int, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let cin = x.channels, h = x.height, w = x.width
        let columns = k * k * cin
        for (index, row) in rows.enumerated() {
            let n = row / (oh * ow), rest = row % (oh * ow)
            let oy = rest / ow, ox = rest % ow
            var dst = col + index * columns
            for ky in 0..<k {
                let iy = oy * stride - padding + ky
                for kx in 0..<k {
                    let ix = ox * stride - padding + kx
                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                        dst.update(from: xp + ((n * h + iy) * w + ix) * cin, count: cin)
                    } else {
                        dst.update(repeating: 0, count: cin)
                    }
                    dst += cin
                }
            }
        }
    }
}

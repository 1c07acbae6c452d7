/// Backward passes of `Convolution` (any kernel, stride, padding and channel counts) for
/// y = conv(x, w) + b: the input gradient by GEMM + col2im (or Winograd for 3×3 stride 1),
/// the weight gradient by im2col + GEMM, the bias gradient by summing over pixels. One
/// call works on one chunk of a batch (see `BatchChunks`); weight and bias gradients of a
/// batch are the chunk partials summed in chunk order.
public enum ConvolutionGradient {
    /// dL/dx for y = conv(x, w) with `stride` and `padding`, x of `height`×`width`.
    public static func input(_ dy: FeatureMap, _ w: ConvolutionWeights, height: Int, width: Int, stride: Int, padding: Int) -> FeatureMap {
        Profiler.measure("conv-dx") { inputGradient(dy, w, height: height, width: width, stride: stride, padding: padding) }
    }

    static func inputGradient(_ dy: FeatureMap, _ w: ConvolutionWeights, height h: Int, width wd: Int, stride: Int, padding: Int) -> FeatureMap {
        let k = w.kernel, cin = w.inputChannels, cout = w.outputChannels
        kernelPrecondition(dy.channels == cout, "convolution gradient: \(dy.channels) gradient channels, weights have \(cout) outputs")
        let oh = dy.height, ow = dy.width
        kernelPrecondition(oh == Convolution.outputSize(h, kernel: k, stride: stride, padding: padding)
                     && ow == Convolution.outputSize(wd, kernel: k, stride: stride, padding: padding),
                     "convolution gradient: output gradient shape does not match the input shape")
        let rows = dy.count * oh * ow
        let columns = k * k * cin
        var dx = FeatureMap(count: dy.count, height: h, width: wd, channels: cin)
        guard rows > 0 else { return dx }
        dy.values.withUnsafeBufferPointer { db in
            dx.values.withUnsafeMutableBufferPointer { xb in
                w.packed.withUnsafeBufferPointer { wb in
                    let dp = db.baseAddress!, xp = xb.baseAddress!, wp = wb.baseAddress!
                    if k == 1 && padding == 0 && stride == 1 {
                        // dx = dy · Wᵀ, W packed [Cin, Cout].
                        BLAS.sgemm(transposeB: true, m: rows, n: cin, k: cout, a: dp, lda: cout, b: wp, ldb: cout, c: xp, ldc: cin)
                        return
                    }
                    // Whole images per GEMM chunk, so that col2im adds every column in a fixed order.
                    let perImage = oh * ow
                    let images = max(1, Convolution.chunkRows(columns: columns, rows: rows) / perImage)
                    let col = UnsafeMutablePointer<Float>.allocate(capacity: images * perImage * columns)
                    defer { col.deallocate() }
                    var n0 = 0
                    while n0 < dy.count {
                        let n1 = min(dy.count, n0 + images)
                        let count = (n1 - n0) * perImage
                        BLAS.sgemm(transposeB: true, m: count, n: columns, k: cout, a: dp + n0 * perImage * cout, lda: cout,
                                   b: wp, ldb: cout, c: col, ldc: columns)
                        col2im(col, images: n0..<n1, into: xp, height: h, width: wd, channels: cin, kernel: k, stride: stride,
                               padding: padding, outHeight: oh, outWidth: ow)
                        n0 = n1
                    }
                }
            }
        }
        return dx
    }

    /// Adds the patch columns of `images` (laid out as `Convolution.im2col` makes them) back
    /// onto the input pixels they came from: the adjoint of im2col.
    static func col2im(_ col: UnsafePointer<Float>, images: Range<Int>, into xp: UnsafeMutablePointer<Float>, height h: Int, width w: Int,
                       channels cin: Int, kernel k: Int, stride: Int, padding: Int, outHeight oh: Int, outWidth ow: Int) {
        let columns = k * k * cin
        var src = col
        for n in images {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    for ky in 0..<k {
                        let iy = oy * stride - padding + ky
                        for kx in 0..<k {
                            let ix = ox * stride - padding + kx
                            if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                let dst = xp + ((n * h + iy) * w + ix) * cin
                                let s = src + (ky * k + kx) * cin
                                for c in 0..<cin { dst[c] += s[c] }
                            }
                        }
                    }
                    src += columns
                }
            }
        }
    }

    /// dL/dw of one chunk in the packed layout of `ConvolutionWeights` ([k·k·Cin, Cout]), for
    /// y = conv(x, w) with `stride` and `padding` and output gradient `dy`.
    public static func weight(_ x: FeatureMap, _ dy: FeatureMap, kernel k: Int, stride: Int, padding: Int) -> [Float] {
        Profiler.measure("conv-dw") { weightGradient(x, dy, kernel: k, stride: stride, padding: padding) }
    }

    static func weightGradient(_ x: FeatureMap, _ dy: FeatureMap, kernel k: Int, stride: Int, padding: Int) -> [Float] {
        let cin = x.channels, cout = dy.channels
        let oh = Convolution.outputSize(x.height, kernel: k, stride: stride, padding: padding)
        let ow = Convolution.outputSize(x.width, kernel: k, stride: stride, padding: padding)
        kernelPrecondition(x.count == dy.count && dy.height == oh && dy.width == ow,
                     "convolution gradient: output gradient shape does not match the input shape")
        let columns = k * k * cin
        let rows = dy.count * oh * ow
        var dw = [Float](repeating: 0, count: columns * cout)
        guard rows > 0 else { return dw }
        x.values.withUnsafeBufferPointer { xb in
            dy.values.withUnsafeBufferPointer { db in
                dw.withUnsafeMutableBufferPointer { wb in
                    let xp = xb.baseAddress!, dp = db.baseAddress!, wp = wb.baseAddress!
                    if k == 1 && padding == 0 && stride == 1 {
                        BLAS.sgemm(transposeA: true, m: cin, n: cout, k: rows, a: xp, lda: cin, b: dp, ldb: cout, c: wp, ldc: cout)
                        return
                    }
                    let chunk = Convolution.chunkRows(columns: columns, rows: rows)
                    let col = UnsafeMutablePointer<Float>.allocate(capacity: chunk * columns)
                    defer { col.deallocate() }
                    var start = 0
                    while start < rows {
                        let count = min(chunk, rows - start)
                        Convolution.im2col(xp, x, kernel: k, stride: stride, padding: padding, outHeight: oh, outWidth: ow,
                                           rows: start..<(start + count), into: col)
                        BLAS.sgemm(transposeA: true, m: columns, n: cout, k: count, a: col, lda: columns, b: dp + start * cout,
                                   ldb: cout, beta: start == 0 ? 0 : 1, c: wp, ldc: cout)
                        start += count
                    }
                }
            }
        }
        return dw
    }

    /// dL/db of one chunk: the per-channel sum of `dy` over pixels and images, in Double.
    public static func bias(_ dy: FeatureMap) -> [Double] { dy.channelSums() }

    /// Packed weights [k·k·Cin, Cout] (row (ky·k + kx)·Cin + ci, column co) in PyTorch's
    /// layout [Cout, Cin, k, k]: the inverse of `ConvolutionWeights(pytorch:)`'s repacking.
    public static func unpack(_ packed: [Float], outputChannels cout: Int, inputChannels cin: Int, kernel k: Int) -> [Float] {
        kernelPrecondition(packed.count == cout * cin * k * k, "convolution weights: \(packed.count) values for \(cout)×\(cin)×\(k)×\(k)")
        var out = [Float](repeating: 0, count: packed.count)
        for co in 0..<cout {
            for ci in 0..<cin {
                for ky in 0..<k {
                    for kx in 0..<k {
                        out[((co * cin + ci) * k + ky) * k + kx] = packed[((ky * k + kx) * cin + ci) * cout + co]
                    }
                }
            }
        }
        return out
    }
}

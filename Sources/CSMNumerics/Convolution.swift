/// Weights of a 2-D convolution, repacked for NHWC GEMM: row (ky·k + kx)·Cin + ci,
/// column co, from PyTorch's [Cout, Cin, k, k].
public struct ConvolutionWeights: Sendable {
    public let outputChannels: Int
    public let inputChannels: Int
    public let kernel: Int
    /// [k·k·Cin, Cout], row-major (empty at bf16 precision).
    public let packed: [Float]
    /// The weights and bias in bf16 for oneDNN's direct kernels (nil at fp32 precision): one
    /// copy of the weights.
    let filtersBF16: BFloat16Filters?
    /// The arithmetic of the convolution.
    public var precision: Precision { filtersBF16 == nil ? .fp32 : .bf16 }
    /// [Cout], or nil.
    public let bias: [Float]?

    /// Repacks PyTorch-layout weights [Cout, Cin, k, k].
    public init(pytorch weight: [Float], bias: [Float]?, outputChannels: Int, inputChannels: Int, kernel: Int,
                precision: Precision = .fp32) {
        kernelPrecondition(kernel > 0 && weight.count == outputChannels * inputChannels * kernel * kernel
                           && (bias?.count ?? outputChannels) == outputChannels,
                           "convolution: \(weight.count) weights for \(inputChannels)→\(outputChannels) channels, kernel \(kernel)")
        self.outputChannels = outputChannels
        self.inputChannels = inputChannels
        self.kernel = kernel
        self.bias = bias
        if precision == .bf16 {
            packed = []
            filtersBF16 = BFloat16Filters(pytorch: weight, bias: bias, outputChannels: outputChannels, inputChannels: inputChannels,
                                          kernel: kernel)
            return
        }
        var packed = [Float](repeating: 0, count: weight.count)
        for co in 0..<outputChannels {
            for ci in 0..<inputChannels {
                for ky in 0..<kernel {
                    for kx in 0..<kernel {
                        let source = ((co * inputChannels + ci) * kernel + ky) * kernel + kx
                        packed[((ky * kernel + kx) * inputChannels + ci) * outputChannels + co] = weight[source]
                    }
                }
            }
        }
        self.packed = packed
        filtersBF16 = nil
    }
}

/// 2-D convolution with any stride and zero padding on NHWC maps, by im2col + GEMM
/// (1×1 stride-1 convolutions are a single GEMM); at bf16 precision by oneDNN's direct
/// kernels (`BFloat16Filters`). Wide 3×3 stride-1 fp32 layers go through `Winograd` instead.
public enum Convolution {
    /// Output side length for an input side of `size`, PyTorch's rule:
    /// ⌊(size + 2·padding − kernel) / stride⌋ + 1.
    public static func outputSize(_ size: Int, kernel: Int, stride: Int = 1, padding: Int) -> Int {
        (size + 2 * padding - kernel) / stride + 1
    }

    /// Rows of the im2col buffer per GEMM call, chosen to keep the buffer near L2 size.
    static func chunkRows(columns: Int, rows: Int) -> Int {
        max(16, min(rows, (1 << 19) / max(1, columns)))
    }

    /// y = conv(x, w) + b with `stride` and `padding` pixels of zeros on each side.
    public static func apply(_ x: FeatureMap, _ w: ConvolutionWeights, stride: Int = 1, padding: Int) -> FeatureMap {
        kernelPrecondition(stride >= 1 && padding >= 0, "convolution: stride must be positive and padding non-negative")
        let name = w.kernel == 1 ? "conv1x1" : "conv\(w.kernel)x\(w.kernel)"
        return Profiler.measure(stride == 1 ? name : name + "/\(stride)") {
            if let filters = w.filtersBF16 { return filters.apply(x, stride: stride, padding: padding) }
            return convolve(x, w, stride: stride, padding: padding)
        }
    }

    static func convolve(_ x: FeatureMap, _ w: ConvolutionWeights, stride: Int, padding: Int) -> FeatureMap {
        kernelPrecondition(x.channels == w.inputChannels && x.hasConsistentShape, "convolution: \(x.channels) input channels, weights expect \(w.inputChannels)")
        let k = w.kernel, cin = w.inputChannels, cout = w.outputChannels
        kernelPrecondition(x.height + 2 * padding >= k && x.width + 2 * padding >= k, "convolution: input smaller than the kernel")
        let oh = outputSize(x.height, kernel: k, stride: stride, padding: padding)
        let ow = outputSize(x.width, kernel: k, stride: stride, padding: padding)
        var y = FeatureMap(uninitializedCount: x.count, height: oh, width: ow, channels: cout)
        let rows = x.count * oh * ow
        guard rows > 0 else { return y }
        x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer { yb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                if k == 1 && padding == 0 && stride == 1 {
                    product(w, rows: rows, a: xp, c: yp)
                } else {
                    let columns = k * k * cin
                    let chunk = chunkRows(columns: columns, rows: rows)
                    let col = UnsafeMutablePointer<Float>.allocate(capacity: chunk * columns)
                    defer { col.deallocate() }
                    var start = 0
                    while start < rows {
                        let count = min(chunk, rows - start)
                        im2col(xp, x, kernel: k, stride: stride, padding: padding, outHeight: oh, outWidth: ow,
                               rows: start..<(start + count), into: col)
                        product(w, rows: count, a: col, c: yp + start * cout)
                        start += count
                    }
                }
                if let bias = w.bias {
                    bias.withUnsafeBufferPointer { bb in addRowBias(yp, rows: rows, bias: bb.baseAddress!, channels: cout) }
                }
            }
        }
        return y
    }

    /// c = a·W for `rows` rows of a (k·k·Cin wide, contiguous) into c (Cout wide).
    static func product(_ w: ConvolutionWeights, rows: Int, a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        let columns = w.kernel * w.kernel * w.inputChannels, cout = w.outputChannels
        w.packed.withUnsafeBufferPointer { wb in
            BLAS.sgemm(m: rows, n: cout, k: columns, a: a, lda: columns, b: wb.baseAddress!, ldb: cout, c: c, ldc: cout)
        }
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

/// y[r, c] += bias[c] for `rows` rows of `channels` values.
@inline(__always)
func addRowBias(_ y: UnsafeMutablePointer<Float>, rows: Int, bias: UnsafePointer<Float>, channels: Int) {
    for r in 0..<rows {
        let row = y + r * channels
        for c in 0..<channels { row[c] += bias[c] }
    }
}

/// A fully connected layer: y = x·Wᵀ + b on [rows, in] → [rows, out].
public struct LinearWeights: Sendable {
    public let inputs: Int
    public let outputs: Int
    /// [out, in], PyTorch layout.
    public let weight: [Float]
    public let bias: [Float]?

    public init(weight: [Float], bias: [Float]?, inputs: Int, outputs: Int) {
        kernelPrecondition(weight.count == inputs * outputs && (bias?.count ?? outputs) == outputs,
                           "linear: \(weight.count) weights for \(inputs)→\(outputs)")
        self.inputs = inputs
        self.outputs = outputs
        self.weight = weight
        self.bias = bias
    }

    /// Applies the layer to `rows` input vectors.
    public func apply(_ x: [Float], rows: Int) -> [Float] {
        kernelPrecondition(rows >= 0 && x.count == rows * inputs, "linear: \(x.count) values are not \(rows) rows of \(inputs)")
        var y = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    BLAS.sgemm(transposeB: true, m: rows, n: outputs, k: inputs, a: xb.baseAddress!, lda: inputs,
                               b: wb.baseAddress!, ldb: inputs, c: yb.baseAddress!, ldc: outputs)
                    if let bias {
                        bias.withUnsafeBufferPointer { addRowBias(yb.baseAddress!, rows: rows, bias: $0.baseAddress!, channels: outputs) }
                    }
                }
            }
        }
        return y
    }
}

import CDNNLKernels

/// The arithmetic a network is evaluated in (`--precision`).
public enum Precision: String, Sendable, CaseIterable {
    /// Single precision throughout: the default, and what the reference fixtures check.
    case fp32
    /// Convolutions in bfloat16: filters stored and inputs rounded to bf16, sums accumulated
    /// and results kept in fp32, everything else (normalisation, activations, attention's
    /// softmax products, the sampler's state) in fp32 as before. On CPUs with AMX or
    /// AVX512-BF16 the convolutions run on oneDNN's bf16 kernels (`BFloat16Filters`).
    case bf16
}

/// Convolution filters rounded to bfloat16 (the upper 16 bits of an IEEE single, nearest,
/// ties to even) and laid out once as oneDNN's direct bf16 convolution kernels read them
/// (AMX or AVX512-BF16), with the fp32 bias: `--precision bf16`'s convolutions. Inputs are
/// rounded to bf16 on the way in; sums accumulate and results stay in fp32.
public final class BFloat16Filters: @unchecked Sendable {
    // Immutable after init but for the primitives oneDNN caches inside, under its own lock.
    private let filters: OpaquePointer
    public let outputChannels: Int
    public let inputChannels: Int
    public let kernel: Int

    /// True when the CPU multiplies bf16 natively (AMX-BF16 or AVX512-BF16); elsewhere
    /// oneDNN falls back to slow reference kernels.
    public static var isNative: Bool {
        CPUFeatures.flags.contains("amx_bf16") || CPUFeatures.flags.contains("avx512_bf16")
    }

    /// From PyTorch-layout weights [Cout, Cin, k, k] and an optional bias [Cout].
    public init(pytorch weight: [Float], bias: [Float]?, outputChannels: Int, inputChannels: Int, kernel: Int) {
        kernelPrecondition(outputChannels > 0 && inputChannels > 0 && kernel > 0 && weight.count == outputChannels * inputChannels * kernel * kernel
                           && (bias?.count ?? outputChannels) == outputChannels,
                           "bf16 filters: \(weight.count) weights for \(inputChannels)→\(outputChannels) channels, kernel \(kernel)")
        var status: Int32 = 0
        let made = weight.withUnsafeBufferPointer { wb in
            guard let bias else { return csm_bf16_filters_create(outputChannels, inputChannels, kernel, wb.baseAddress, nil, &status) }
            return bias.withUnsafeBufferPointer { csm_bf16_filters_create(outputChannels, inputChannels, kernel, wb.baseAddress, $0.baseAddress, &status) }
        }
        guard let made else { fatalError("bf16 filters \(inputChannels)→\(outputChannels), kernel \(kernel): oneDNN status \(status) (out of memory?)") }
        filters = made
        self.outputChannels = outputChannels
        self.inputChannels = inputChannels
        self.kernel = kernel
    }

    deinit { csm_bf16_filters_destroy(filters) }

    /// conv(x) + bias with `stride` and zero `padding`, on the calling thread.
    public func apply(_ x: FeatureMap, stride: Int, padding: Int) -> FeatureMap {
        kernelPrecondition(x.channels == inputChannels && x.hasConsistentShape, "convolution: \(x.channels) input channels, weights expect \(inputChannels)")
        kernelPrecondition(x.height + 2 * padding >= kernel && x.width + 2 * padding >= kernel, "convolution: input smaller than the kernel")
        let oh = Convolution.outputSize(x.height, kernel: kernel, stride: stride, padding: padding)
        let ow = Convolution.outputSize(x.width, kernel: kernel, stride: stride, padding: padding)
        var y = FeatureMap(uninitializedCount: x.count, height: oh, width: ow, channels: outputChannels)
        guard x.count > 0 else { return y }
        Profiler.addFLOPs(2 * x.count * oh * ow * outputChannels * inputChannels * kernel * kernel)
        let status = x.values.withUnsafeBufferPointer { xb in
            y.values.withUnsafeMutableBufferPointer {
                csm_bf16_convolution_forward(filters, x.count, x.height, x.width, stride, padding, xb.baseAddress, $0.baseAddress)
            }
        }
        kernelPrecondition(status == 0, "bf16 convolution \(inputChannels)→\(outputChannels) on \(x.count)×\(x.height)×\(x.width): oneDNN status \(status)")
        return y
    }

    /// `values` rounded to the nearest bf16 (ties to even; subnormals to zero), as floats:
    /// what the products see of their inputs.
    public static func rounded(_ values: [Float]) -> [Float] {
        var bits = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { v in
            bits.withUnsafeMutableBufferPointer { round(v.baseAddress!, into: $0.baseAddress!, rows: 1, columns: values.count) }
        }
        return bits.map { Float(bitPattern: UInt32($0) << 16) }
    }

    /// Rounds a rows × columns block at `source` to bf16 into `destination`, rows
    /// `sourceStride` and `destinationStride` values apart (`columns` when dense).
    static func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, rows: Int, columns: Int,
                      sourceStride: Int? = nil, destinationStride: Int? = nil) {
        csm_bf16_round_rows(source, sourceStride ?? columns, destination, destinationStride ?? columns, rows, columns)
    }
}

/// A batch of matrices B[p] (k × n each) rounded to bfloat16 and laid out once for oneDNN's
/// bf16 matmul kernels: the right-hand sides of Winograd's α² products at `--precision bf16`.
/// The left-hand sides come in bf16, products accumulate and land in fp32.
public final class BFloat16Matrices: @unchecked Sendable {
    // Immutable after init but for the primitives oneDNN caches inside, under its own lock.
    private let matrices: OpaquePointer
    public let count: Int
    public let rows: Int
    public let columns: Int

    /// From `count` row-major fp32 matrices of rows × columns, one after another.
    public init(_ values: UnsafeBufferPointer<Float>, count: Int, rows: Int, columns: Int) {
        kernelPrecondition(count > 0 && rows > 0 && columns > 0 && values.count == count * rows * columns,
                           "bf16 matrices: \(values.count) values for \(count) matrices of \(rows)×\(columns)")
        var status: Int32 = 0
        guard let made = csm_bf16_matrices_create(count, rows, columns, values.baseAddress, &status) else {
            fatalError("bf16 matrices \(count)×\(rows)×\(columns): oneDNN status \(status) (out of memory?)")
        }
        matrices = made
        self.count = count
        self.rows = rows
        self.columns = columns
    }

    deinit { csm_bf16_matrices_destroy(matrices) }

    /// C[p] = A[p]·B[p] for every p, on the calling thread: A[p] is `m` × `rows` in bf16 at
    /// a + p·aStride (rows `lda` apart), C[p] is `m` × `columns` in fp32 at c + p·cStride
    /// (rows `ldc` apart), overwritten.
    public func multiply(m: Int, a: UnsafePointer<UInt16>, lda: Int, aStride: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                         cStride: Int) {
        Profiler.addFLOPs(2 * count * m * rows * columns)
        let status = csm_bf16_matrices_multiply(matrices, m, a, lda, aStride, c, ldc, cStride)
        kernelPrecondition(status == 0, "bf16 product of \(count) matrices \(m)×\(rows)×\(columns): oneDNN status \(status)")
    }
}

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

    /// Rounds a rows × columns block at `source` (dense) to bf16 into `destination` (dense).
    static func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, rows: Int, columns: Int) {
        csm_bf16_round_rows(source, columns, destination, columns, rows, columns)
    }
}

import CDNNLKernels

/// A convolution on oneDNN's direct fp32 kernels, with its input and weight gradients: what
/// training runs. Any kernel size, stride, zero padding and channel count; NHWC activations
/// as `FeatureMap` holds them, weights in PyTorch's layout [Cout, Cin, k, k] (reordered into
/// the kernels' layout inside each call, which costs little next to the convolution). One
/// call works on one chunk of a batch, on the calling thread (see `BatchChunks`); a
/// primitive is made per chunk shape on first use and kept.
public struct DirectConvolution: Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int
    public let hasBias: Bool

    public init(inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int = 1, padding: Int, hasBias: Bool) {
        kernelPrecondition(inputChannels > 0 && outputChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                           "convolution: \(inputChannels)→\(outputChannels) channels, kernel \(kernel), stride \(stride), padding \(padding)")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.hasBias = hasBias
    }

    /// True for a stride-1 convolution whose output has its input's size: its input gradient
    /// is the forward convolution of dy by the transposed, flipped filters, which runs on the
    /// faster forward kernels.
    var preservesSize: Bool { stride == 1 && 2 * padding == kernel - 1 }

    /// conv(x, weight) (+ bias).
    public func forward(_ x: FeatureMap, weight: [Float], bias: [Float]? = nil) -> FeatureMap {
        kernelPrecondition(x.channels == inputChannels && x.hasConsistentShape,
                           "convolution: \(x.channels) input channels, the layer takes \(inputChannels)")
        kernelPrecondition(weight.count == outputChannels * inputChannels * kernel * kernel && (bias?.count ?? outputChannels) == outputChannels
                           && (bias != nil) == hasBias, "convolution: weights or bias do not match \(inputChannels)→\(outputChannels), kernel \(kernel)")
        kernelPrecondition(x.height + 2 * padding >= kernel && x.width + 2 * padding >= kernel, "convolution: input smaller than the kernel")
        let oh = Convolution.outputSize(x.height, kernel: kernel, stride: stride, padding: padding)
        let ow = Convolution.outputSize(x.width, kernel: kernel, stride: stride, padding: padding)
        var y = FeatureMap(uninitializedCount: x.count, height: oh, width: ow, channels: outputChannels)
        guard x.count > 0 else { return y }
        let primitive = Self.primitive(count: x.count, height: x.height, width: x.width, inputs: inputChannels, outputs: outputChannels,
                                       kernel: kernel, stride: stride, padding: padding, bias: hasBias)
        let status = x.values.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                y.values.withUnsafeMutableBufferPointer { yb in
                    if let bias {
                        return bias.withUnsafeBufferPointer { csm_convolution_forward(primitive, xb.baseAddress, wb.baseAddress, $0.baseAddress, yb.baseAddress) }
                    }
                    return csm_convolution_forward(primitive, xb.baseAddress, wb.baseAddress, nil, yb.baseAddress)
                }
            }
        }
        Self.check(status, "forward")
        return y
    }

    /// dL/dx for the output gradient `dy`, x of `height` × `width`. A size-preserving layer
    /// uses `transposedWeight` (`transposedFlippedIfUsed(weight)`, for callers that run many chunks
    /// with the same weights) or makes it from `weight`.
    public func inputGradient(_ dy: FeatureMap, weight: [Float], transposedWeight: [Float]? = nil, height: Int, width: Int) -> FeatureMap {
        kernelPrecondition(dy.channels == outputChannels && dy.hasConsistentShape
                           && dy.height == Convolution.outputSize(height, kernel: kernel, stride: stride, padding: padding)
                           && dy.width == Convolution.outputSize(width, kernel: kernel, stride: stride, padding: padding),
                           "convolution gradient: output gradient shape does not match the input shape")
        kernelPrecondition(weight.count == outputChannels * inputChannels * kernel * kernel
                           && (transposedWeight?.count ?? weight.count) == weight.count, "convolution gradient: weights do not match the layer")
        if preservesSize {
            let transposed = DirectConvolution(inputChannels: outputChannels, outputChannels: inputChannels, kernel: kernel,
                                               padding: kernel - 1 - padding, hasBias: false)
            return transposed.forward(dy, weight: transposedWeight ?? transposedFlipped(weight))
        }
        var dx = FeatureMap(uninitializedCount: dy.count, height: height, width: width, channels: inputChannels)
        guard dy.count > 0 else { return dx }
        let primitive = Self.primitive(count: dy.count, height: height, width: width, inputs: inputChannels, outputs: outputChannels,
                                       kernel: kernel, stride: stride, padding: padding, bias: hasBias)
        let status = dy.values.withUnsafeBufferPointer { db in
            weight.withUnsafeBufferPointer { wb in
                dx.values.withUnsafeMutableBufferPointer { csm_convolution_input_gradient(primitive, db.baseAddress, wb.baseAddress, $0.baseAddress) }
            }
        }
        Self.check(status, "input gradient")
        return dx
    }

    /// dL/dweight ([Cout, Cin, k, k]) and, with a bias, dL/dbias of one chunk, for input `x`
    /// and output gradient `dy`.
    public func weightGradient(_ x: FeatureMap, _ dy: FeatureMap) -> (weight: [Float], bias: [Float]?) {
        kernelPrecondition(x.channels == inputChannels && dy.channels == outputChannels && x.count == dy.count && x.hasConsistentShape
                           && dy.hasConsistentShape
                           && dy.height == Convolution.outputSize(x.height, kernel: kernel, stride: stride, padding: padding)
                           && dy.width == Convolution.outputSize(x.width, kernel: kernel, stride: stride, padding: padding),
                           "convolution gradient: output gradient shape does not match the input shape")
        var dw = [Float](repeating: 0, count: outputChannels * inputChannels * kernel * kernel)
        var db: [Float]? = hasBias ? [Float](repeating: 0, count: outputChannels) : nil
        guard x.count > 0 else { return (dw, db) }
        let primitive = Self.primitive(count: x.count, height: x.height, width: x.width, inputs: inputChannels, outputs: outputChannels,
                                       kernel: kernel, stride: stride, padding: padding, bias: hasBias)
        let status = x.values.withUnsafeBufferPointer { xb in
            dy.values.withUnsafeBufferPointer { yb in
                dw.withUnsafeMutableBufferPointer { wb in
                    guard db != nil else { return csm_convolution_weight_gradient(primitive, xb.baseAddress, yb.baseAddress, wb.baseAddress, nil) }
                    return db!.withUnsafeMutableBufferPointer {
                        csm_convolution_weight_gradient(primitive, xb.baseAddress, yb.baseAddress, wb.baseAddress, $0.baseAddress)
                    }
                }
            }
        }
        Self.check(status, "weight gradient")
        return (dw, db)
    }

    /// w′[ci, co, ky, kx] = w[co, ci, k−1−ky, k−1−kx]: the filters of the input gradient of a
    /// size-preserving stride-1 convolution (nil for other layers, which do not use them).
    public func transposedFlippedIfUsed(_ weight: [Float]) -> [Float]? {
        preservesSize ? transposedFlipped(weight) : nil
    }

    func transposedFlipped(_ weight: [Float]) -> [Float] {
        kernelPrecondition(weight.count == outputChannels * inputChannels * kernel * kernel, "convolution: weights do not match the layer")
        let cout = outputChannels, cin = inputChannels, taps = kernel * kernel
        return [Float](unsafeUninitializedCapacity: weight.count) { out, initialized in
            for co in 0..<cout {
                for ci in 0..<cin {
                    let from = (co * cin + ci) * taps, to = (ci * cout + co) * taps
                    for t in 0..<taps { out[to + t] = weight[from + taps - 1 - t] }
                }
            }
            initialized = weight.count
        }
    }

    private static func primitive(count: Int, height: Int, width: Int, inputs: Int, outputs: Int, kernel: Int, stride: Int, padding: Int,
                                  bias: Bool) -> OpaquePointer {
        var status: Int32 = 0
        let made = csm_convolution_get(count, height, width, inputs, outputs, kernel, stride, padding, bias ? 1 : 0, &status)
        guard let made else {
            fatalError("convolution \(inputs)→\(outputs), kernel \(kernel), stride \(stride) on \(count)×\(height)×\(width): oneDNN status \(status)")
        }
        return made
    }

    private static func check(_ status: Int32, _ stage: String) {
        if status != 0 { fatalError("convolution \(stage): oneDNN status \(status) (out of memory?)") }
    }
}

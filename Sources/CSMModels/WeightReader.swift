import CSMFormats
import CSMNumerics

/// Reads a network's parameters out of a safetensors file by name, checking every shape
/// against what the architecture needs and remembering which tensors were used, so that
/// leftovers (a file for another architecture) are reported too.
///
/// Without a file it records the names and shapes the architecture asks for instead (and
/// hands out zeros): that is how `EDMModel.parameterShapes` lists a configuration's tensors.
final class WeightReader {
    let file: SafeTensorsFile?
    private(set) var used: Set<String> = []
    private(set) var requested: [(name: String, shape: [Int])] = []
    /// The arithmetic of the convolutions built (linear layers stay fp32).
    let precision: Precision

    init(_ file: SafeTensorsFile?, precision: Precision = .fp32) {
        self.file = file
        self.precision = precision
    }

    /// The path used in error messages.
    var path: String { file?.path ?? "<architecture>" }

    /// Tensor `name` as floats; its shape must be `shape` and every value finite.
    func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
        guard let file else {
            requested.append((name, shape))
            return [Float](repeating: 0, count: shape.reduce(1, *))
        }
        let actual = try file.shape(of: name)
        guard actual == shape else {
            throw FileError(file.path, "tensor '\(name)' has shape \(actual) but the architecture in the metadata needs \(shape)")
        }
        used.insert(name)
        return try file.finiteFloats(name)
    }

    /// Marks `name` used if present (optional buffers).
    func optional(_ name: String) -> Bool {
        guard let file, file.contains(name) else { return false }
        used.insert(name)
        return true
    }

    func linear(_ name: String, inputs: Int, outputs: Int, bias: Bool = true) throws -> LinearWeights {
        let weight = try tensor("\(name).weight", [outputs, inputs])
        let b = bias ? try tensor("\(name).bias", [outputs]) : nil
        return LinearWeights(weight: weight, bias: b, inputs: inputs, outputs: outputs)
    }

    func groupNorm(_ name: String, channels: Int, epsilon: Float) throws -> GroupNormWeights {
        let groups = min(32, channels / 4)
        guard groups >= 1 else {
            throw FileError(path, "group norm '\(name)' has \(channels) channels; EDM needs at least 4")
        }
        guard channels % groups == 0 else {
            throw FileError(path, "group norm '\(name)' has \(channels) channels, not divisible into EDM's \(groups) groups")
        }
        return GroupNormWeights(gamma: try tensor("\(name).weight", [channels]), beta: try tensor("\(name).bias", [channels]),
                                groups: groups, epsilon: epsilon)
    }

    /// A Conv2d of EDM's: optional weights (kernel 0 means resample only) and up/down.
    func conv(_ name: String, inputs: Int, outputs: Int, kernel: Int, bias: Bool = true, up: Bool = false,
              down: Bool = false, filter: ResampleFilter, fused: Bool = false) throws -> SamplingConv2d {
        var weights: ConvolutionWeights?
        var winograd: WinogradWeights?
        if kernel > 0 {
            let w = try tensor("\(name).weight", [outputs, inputs, kernel, kernel])
            let b = bias ? try tensor("\(name).bias", [outputs]) : nil
            // One copy of the weights in memory: Winograd's transform where it runs the layer
            // (in bf16 at bf16 precision), else the packed im2col layout at fp32 or the direct
            // kernels' layout at bf16.
            if kernel == 3 && !fused && WinogradWeights.isWorthwhile(inputChannels: inputs, outputChannels: outputs) {
                winograd = WinogradWeights(pytorch: w, bias: b, outputChannels: outputs, inputChannels: inputs, tile: Winograd.defaultTile,
                                           precision: precision)
            } else {
                weights = ConvolutionWeights(pytorch: w, bias: b, outputChannels: outputs, inputChannels: inputs, kernel: kernel,
                                             precision: precision)
            }
        }
        if up || down {
            try checkResampleFilter("\(name).resample_filter", filter)
        }
        return SamplingConv2d(weights: weights, winograd: winograd, up: up, down: down, filter: filter, fused: fused)
    }

    /// The `SamplingConv2d` of one convolution in `EDMLayout`, resampling with `filter`.
    func conv(_ spec: EDMLayout.Conv, filter: ResampleFilter) throws -> SamplingConv2d {
        try conv(spec.name, inputs: spec.inputs, outputs: spec.outputs, kernel: spec.kernel, up: spec.up, down: spec.down,
                 filter: filter, fused: spec.fused)
    }

    /// A stored resample filter must equal the one the metadata implies.
    private func checkResampleFilter(_ name: String, _ filter: ResampleFilter) throws {
        guard let file, file.contains(name) else { return }
        let l = filter.taps.count
        let stored = try tensor(name, [1, 1, l, l])
        for y in 0..<l {
            for x in 0..<l where abs(stored[y * l + x] - filter.taps[y] * filter.taps[x]) > 1e-6 {
                throw FileError(file.path, "tensor '\(name)' disagrees with resample_filter in the metadata")
            }
        }
    }

    /// Every tensor in the file must have been used.
    func checkAllUsed() throws {
        guard let file else { return }
        let unused = Set(file.entries.keys).subtracting(used).sorted()
        if let first = unused.first {
            let more = unused.count > 1 ? " and \(unused.count - 1) more" : ""
            throw FileError(file.path, "unexpected tensor '\(first)'\(more): the weights do not match the architecture in the metadata")
        }
    }
}

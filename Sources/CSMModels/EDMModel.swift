import CSMFormats
import CSMNumerics
import Foundation

/// A trained EDM diffusion model read from an `edm-diffusion/1` file: the denoiser
/// D(x; σ, c) = c_skip·x + c_out·F(c_in·x; c_noise, c), with F a SongUNet or DhariwalUNet
/// and the VP, VE or EDM preconditioning. The class input c is any real vector, so mixed
/// labels work exactly like one-hot ones.
public final class EDMModel: Sendable {
    /// The file the model came from.
    public let path: String
    public let configuration: EDMConfiguration
    /// Class names from the metadata, if any.
    public let classNames: [String]?
    /// Other metadata (provenance, …).
    public let metadata: [String: String]
    /// The arithmetic of the convolutions.
    public let precision: Precision
    private let network: Network

    private enum Network: Sendable {
        case song(SongUNet), dhariwal(DhariwalUNet)
    }

    /// Loads and validates `path`: metadata, every tensor's presence and shape, no leftovers.
    /// `precision` is the arithmetic of the convolutions (fp32 unless asked otherwise).
    public convenience init(path: String, precision: Precision = .fp32) throws {
        try self.init(file: try SafeTensorsFile(path: path), precision: precision)
    }

    public init(file: SafeTensorsFile, precision: Precision = .fp32) throws {
        path = file.path
        metadata = file.metadata
        try file.requireFormat("edm-diffusion/1")
        guard let edm = file.metadata["edm"] else { throw FileError(file.path, "metadata has no 'edm' entry") }
        configuration = try EDMConfiguration(json: edm, path: file.path)
        classNames = try file.metadataStrings("class_names", count: configuration.labelDimension, countName: "label_dim")
        let reader = WeightReader(file, precision: precision)
        self.precision = precision
        switch configuration.modelType {
        case .songUNet: network = .song(try SongUNet(configuration, reader))
        case .dhariwalUNet: network = .dhariwal(try DhariwalUNet(configuration, reader))
        }
        try reader.checkAllUsed()
    }

    /// The tensors (EDM names and shapes) that a network of `configuration` stores, in
    /// construction order: what a converter or a test needs to write a valid file.
    public static func parameterShapes(_ configuration: EDMConfiguration) throws -> [(name: String, shape: [Int])] {
        let reader = WeightReader(nil)
        switch configuration.modelType {
        case .songUNet: _ = try SongUNet(configuration, reader)
        case .dhariwalUNet: _ = try DhariwalUNet(configuration, reader)
        }
        return reader.requested
    }

    /// Image side length.
    public var resolution: Int { configuration.resolution }
    /// Image channels.
    public var channels: Int { configuration.channels }
    /// Number of classes (0: unconditional).
    public var labelDimension: Int { configuration.labelDimension }
    /// Smallest noise level the network supports.
    public var sigmaMin: Double { configuration.sigmaMin }
    /// Largest noise level the network supports.
    public var sigmaMax: Double { configuration.sigmaMax }

    /// D(x; σ, c) for a batch. x: [n, H, W, C] (NHWC); sigma: n values; classLabels:
    /// n·label_dim values (ignored for unconditional models). The batch is split across
    /// the machine's cores.
    public func denoise(_ x: FeatureMap, sigma: [Float], classLabels: [Float]) -> FeatureMap {
        let n = x.count, k = labelDimension
        kernelPrecondition(sigma.count == n && (k == 0 || classLabels.count == n * k), "denoise: batch sizes disagree")
        // Cores take micro-batches in turn: small enough that a layer's activations stay
        // in the core's cache, large enough to keep the GEMMs efficient.
        // Every pass allocates and frees the same activation sizes: keep them in the process.
        MemoryReuse.enable()
        let microBatch = Self.microBatch(precision)
        let parts = Parallel.ranges(n, parts: max(Parallel.workerCount, (n + microBatch - 1) / microBatch))
        var results = [FeatureMap?](repeating: nil, count: parts.count)
        results.withUnsafeMutableBufferPointer { out in
            let slots = out
            Parallel.forEach(parts.count) { p in
                let range = parts[p]
                slots[p] = denoiseSerial(x.slice(range), sigma: Array(sigma[range]),
                                         classLabels: k == 0 ? [] : Array(classLabels[(range.lowerBound * k)..<(range.upperBound * k)]))
            }
        }
        return parts.count == 1 ? results[0]! : FeatureMap.joined(results.map { $0! })
    }

    /// Floating-point operations of one network evaluation per image (matrix products,
    /// 2 per multiply-add), measured by running the network once on a blank image.
    public func measureFLOPsPerImage() -> Double {
        let x = FeatureMap(count: 1, height: resolution, width: resolution, channels: channels)
        let labels = [Float](repeating: labelDimension > 0 ? 1 / Float(labelDimension) : 0, count: labelDimension)
        return Double(Profiler.countFLOPs { _ = denoiseSerial(x, sigma: [1], classLabels: labels) })
    }

    /// Images per network pass on one core (`CSM_MICROBATCH` overrides): 8 at fp32, where
    /// OpenBLAS packs each Winograd point's weights on every product and more tiles pay for
    /// that; 4 at bf16, where oneDNN's weights are packed once and smaller activations stay
    /// in cache (measured on the 56 M-parameter DDPM++ network at batch 16: bf16 3–4 % faster
    /// at 4, fp32 5 % slower; the default model the same at both).
    static func microBatch(_ precision: Precision) -> Int {
        if let text = ProcessInfo.processInfo.environment["CSM_MICROBATCH"], let value = Int(text), value > 0 { return value }
        return precision == .bf16 ? 4 : 8
    }

    /// The preconditioning coefficients (c_skip, c_out, c_in, c_noise) at σ.
    public func coefficients(sigma: Double) -> (skip: Double, out: Double, input: Double, noise: Double) {
        configuration.preconditioner.coefficients(sigma: sigma)
    }

    private func denoiseSerial(_ x: FeatureMap, sigma: [Float], classLabels: [Float]) -> FeatureMap {
        let labels = labelDimension == 0 ? [Float](repeating: 0, count: 0) : classLabels
        return configuration.preconditioner.denoise(x, sigma: sigma) { scaled, noise in
            switch network {
            case .song(let net): net(scaled, noiseLabels: noise, classLabels: labels)
            case .dhariwal(let net): net(scaled, noiseLabels: noise, classLabels: labels)
            }
        }
    }

}

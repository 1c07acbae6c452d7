import CSMFormats
import Foundation

/// The architecture of an `edm-diffusion/1` file (docs/formats/edm-diffusion.md): the
/// preconditioner's class and its constructor arguments exactly as EDM names them, with
/// EDM's defaults for absent keys.
public struct EDMConfiguration: Sendable {
    public enum ModelType: String, Sendable { case songUNet = "SongUNet", dhariwalUNet = "DhariwalUNet" }

    /// The preconditioner (VP, VE or EDM) with its parameters.
    public var preconditioner: any Preconditioner
    public var modelType: ModelType
    public var resolution: Int
    public var channels: Int
    public var labelDimension: Int

    // Network (SongUNet / DhariwalUNet).
    public var modelChannels: Int
    public var channelMultipliers: [Int]
    public var embeddingMultiplier: Int
    public var blocksPerResolution: Int
    public var attentionResolutions: [Int]
    public var augmentDimension: Int
    public var embeddingType: String
    public var noiseMultiplier: Int
    public var encoderType: String
    public var decoderType: String
    public var resampleFilter: [Float]

    static let knownKeys: Set<String> = [
        "img_resolution", "img_channels", "label_dim", "use_fp16", "model_type", "beta_d", "beta_min", "M",
        "epsilon_t", "sigma_min", "sigma_max", "sigma_data", "augment_dim", "model_channels", "channel_mult",
        "channel_mult_emb", "num_blocks", "attn_resolutions", "dropout", "label_dropout", "embedding_type",
        "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter",
    ]

    /// Parses the `edm` metadata JSON of `path`.
    public init(json text: String, path: String) throws {
        func fail(_ message: String) -> FileError { FileError(path, "metadata 'edm': \(message)") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        guard let className = object["class_name"] as? String else { throw fail("missing class_name") }
        let classes: [any Preconditioner.Type] = [VPPreconditioner.self, VEPreconditioner.self, EDMPreconditioner.self]
        guard let preconditionerType = classes.first(where: { $0.className == className }) else {
            throw fail("class_name '\(className)' is not supported (VPPrecond, VEPrecond or EDMPrecond)")
        }
        guard let kwargs = object["init_kwargs"] as? [String: Any] else { throw fail("missing init_kwargs object") }
        if let unknown = kwargs.keys.filter({ !Self.knownKeys.contains($0) }).sorted().first {
            throw fail("unknown init_kwargs key '\(unknown)'")
        }

        func int(_ key: String, _ fallback: Int?) throws -> Int {
            guard let value = kwargs[key] else {
                if let fallback { return fallback }
                throw fail("init_kwargs needs '\(key)'")
            }
            guard let number = value as? NSNumber, let result = Int(exactly: number.doubleValue), result >= 0 else {
                throw fail("'\(key)' must be a non-negative integer")
            }
            return result
        }
        func double(_ key: String, _ fallback: Double) throws -> Double {
            guard let value = kwargs[key] else { return fallback }
            guard let number = value as? NSNumber else { throw fail("'\(key)' must be a number") }
            return number.doubleValue
        }
        func ints(_ key: String, _ fallback: [Int]) throws -> [Int] {
            guard let value = kwargs[key] else { return fallback }
            guard let list = value as? [NSNumber], let result = Optional(list.compactMap { Int(exactly: $0.doubleValue) }),
                  result.count == list.count, result.allSatisfy({ $0 >= 0 }) else {
                throw fail("'\(key)' must be a list of non-negative integers")
            }
            return result
        }
        func string(_ key: String, _ fallback: String, _ allowed: [String]) throws -> String {
            guard let value = kwargs[key] else { return fallback }
            guard let text = value as? String, allowed.contains(text) else {
                throw fail("'\(key)' must be one of \(allowed.joined(separator: ", "))")
            }
            return text
        }

        let modelName = try string("model_type", preconditionerType.defaultModelType, ["SongUNet", "DhariwalUNet"])
        self.modelType = ModelType(rawValue: modelName)!
        resolution = try int("img_resolution", nil)
        channels = try int("img_channels", nil)
        labelDimension = try int("label_dim", 0)
        let song = modelType == .songUNet
        modelChannels = try int("model_channels", song ? 128 : 192)
        channelMultipliers = try ints("channel_mult", song ? [1, 2, 2, 2] : [1, 2, 3, 4])
        embeddingMultiplier = try int("channel_mult_emb", 4)
        blocksPerResolution = try int("num_blocks", song ? 4 : 3)
        attentionResolutions = try ints("attn_resolutions", song ? [16] : [32, 16, 8])
        augmentDimension = try int("augment_dim", 0)
        embeddingType = try string("embedding_type", "positional", ["positional", "fourier"])
        noiseMultiplier = try int("channel_mult_noise", 1)
        encoderType = try string("encoder_type", "standard", ["standard", "skip", "residual"])
        decoderType = try string("decoder_type", "standard", ["standard", "skip"])
        resampleFilter = try ints("resample_filter", [1, 1]).map(Float.init)
        switch className {
        case VPPreconditioner.className:
            preconditioner = VPPreconditioner(betaD: try double("beta_d", 19.9), betaMin: try double("beta_min", 0.1),
                                              timesteps: try double("M", 1000), epsilonT: try double("epsilon_t", 1e-5))
        case VEPreconditioner.className:
            preconditioner = VEPreconditioner(sigmaMin: try double("sigma_min", 0.02), sigmaMax: try double("sigma_max", 100))
        default:
            preconditioner = EDMPreconditioner(sigmaMin: try double("sigma_min", 0), sigmaMax: try double("sigma_max", .infinity),
                                               sigmaData: try double("sigma_data", 0.5))
        }

        guard resolution > 0, channels > 0, modelChannels > 0, !channelMultipliers.isEmpty,
              channelMultipliers.allSatisfy({ $0 > 0 }), embeddingMultiplier > 0, noiseMultiplier > 0 else {
            throw fail("sizes must be positive")
        }
        guard resolution % (1 << (channelMultipliers.count - 1)) == 0 else {
            throw fail("img_resolution \(resolution) cannot be halved \(channelMultipliers.count - 1) times")
        }
        guard !resampleFilter.isEmpty, resampleFilter.reduce(0, +) != 0 else { throw fail("resample_filter must have a non-zero sum") }
        guard resolution <= 4096, channels <= 64, modelChannels <= 4096, channelMultipliers.count <= 8 else {
            throw fail("sizes are implausibly large")
        }
    }

    /// The smallest noise level the network supports.
    public var sigmaMin: Double { preconditioner.sigmaMin }
    /// The largest noise level the network supports.
    public var sigmaMax: Double { preconditioner.sigmaMax }
}

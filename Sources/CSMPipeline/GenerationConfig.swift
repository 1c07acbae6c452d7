import CSMDiffusion
import CSMFormats
import CSMRandom
import Foundation

/// Every setting of a `csm generate` run that changes the bytes it writes. It is stored as
/// the manifest's `config` (runs must agree on it to share a directory or to be merged), and
/// its `generator` and `annotator` parts become every shard's attributes of those names.
/// Keys are snake_case as in the files.
public struct GenerationConfig: Codable, Equatable, Sendable {
    /// The sampler's settings (docs/formats/csm-shard.md, generator.sampler).
    public struct Sampler: Codable, Equatable, Sendable {
        public var steps: Int
        public var sigmaMin: Double
        public var sigmaMax: Double
        public var rho: Double
        public var solver: String
        public var churn: Double
        public var churnSigmaMin: Double
        /// Stored as the string "inf" when infinite (JSON has no infinity).
        public var churnSigmaMax: Double
        public var churnNoise: Double
        /// The network's arithmetic, "fp32" or "bf16" (stored only when not fp32, so that
        /// fp32 manifests read as before).
        public var precision: String

        /// The settings `settings` describe, with the network evaluated in `precision`.
        public init(_ settings: SamplerSettings, precision: String = "fp32") {
            steps = settings.steps
            sigmaMin = settings.sigmaMin
            sigmaMax = settings.sigmaMax
            rho = settings.rho
            solver = settings.solver.rawValue
            churn = settings.churn
            churnSigmaMin = settings.churnSigmaMin
            churnSigmaMax = settings.churnSigmaMax
            churnNoise = settings.churnNoise
            self.precision = precision
        }

        enum CodingKeys: String, CodingKey {
            case steps, rho, solver, churn, precision
            case sigmaMin = "sigma_min", sigmaMax = "sigma_max", churnSigmaMin = "churn_sigma_min"
            case churnSigmaMax = "churn_sigma_max", churnNoise = "churn_noise"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            steps = try c.decode(Int.self, forKey: .steps)
            sigmaMin = try c.decode(Double.self, forKey: .sigmaMin)
            sigmaMax = try c.decode(Double.self, forKey: .sigmaMax)
            rho = try c.decode(Double.self, forKey: .rho)
            solver = try c.decode(String.self, forKey: .solver)
            churn = try c.decode(Double.self, forKey: .churn)
            churnSigmaMin = try c.decode(Double.self, forKey: .churnSigmaMin)
            if let value = try? c.decode(Double.self, forKey: .churnSigmaMax) {
                churnSigmaMax = value
            } else {
                churnSigmaMax = try c.decode(String.self, forKey: .churnSigmaMax) == "inf" ? .infinity : .nan
            }
            churnNoise = try c.decode(Double.self, forKey: .churnNoise)
            precision = try c.decodeIfPresent(String.self, forKey: .precision) ?? "fp32"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(steps, forKey: .steps)
            try c.encode(sigmaMin, forKey: .sigmaMin)
            try c.encode(sigmaMax, forKey: .sigmaMax)
            try c.encode(rho, forKey: .rho)
            try c.encode(solver, forKey: .solver)
            try c.encode(churn, forKey: .churn)
            try c.encode(churnSigmaMin, forKey: .churnSigmaMin)
            if churnSigmaMax.isFinite { try c.encode(churnSigmaMax, forKey: .churnSigmaMax) } else { try c.encode("inf", forKey: .churnSigmaMax) }
            try c.encode(churnNoise, forKey: .churnNoise)
            if precision != "fp32" { try c.encode(precision, forKey: .precision) }
        }
    }

    /// What made the images: the model, the sampler and the seeds.
    public struct Generator: Codable, Equatable, Sendable {
        /// The model's file name.
        public var model: String
        public var modelSHA256: String
        public var sampler: Sampler
        /// The global seed, as a signed 64-bit integer (its bit pattern).
        public var seed: Int64
        /// Trajectory length L.
        public var lambdas: Int
        /// How latents are derived from (seed, group).
        public var seeding = "group latent = Philox4x32-10 Gaussian stream keyed by splitmix64(seed, group)"

        public init(model: String, modelSHA256: String, sampler: Sampler, seed: UInt64, lambdas: Int) {
            self.model = model
            self.modelSHA256 = modelSHA256
            self.sampler = sampler
            self.seed = Int64(bitPattern: seed)
            self.lambdas = lambdas
        }

        enum CodingKeys: String, CodingKey {
            case model, sampler, seed, lambdas, seeding
            case modelSHA256 = "model_sha256"
        }
    }

    /// What made the labels: the classifier, its prototypes and the reannotation settings.
    public struct Annotator: Codable, Equatable, Sendable {
        /// The classifier's file name.
        public var classifier: String
        public var classifierSHA256: String
        public var prototypesSHA256: String
        /// s of λ' = σ(s·(λ̂ − 0.5)).
        public var sharpness: Double
        /// δ of the consistency flag.
        public var consistencyMargin: Double

        public init(classifier: String, classifierSHA256: String, prototypesSHA256: String, sharpness: Double,
                    consistencyMargin: Double) {
            self.classifier = classifier
            self.classifierSHA256 = classifierSHA256
            self.prototypesSHA256 = prototypesSHA256
            self.sharpness = sharpness
            self.consistencyMargin = consistencyMargin
        }

        enum CodingKeys: String, CodingKey {
            case classifier, sharpness
            case classifierSHA256 = "classifier_sha256", prototypesSHA256 = "prototypes_sha256"
            case consistencyMargin = "consistency_margin"
        }
    }

    /// The weights file that allocated the trajectories to the pairs (`--pair-weights`).
    public struct PairWeightsUse: Codable, Equatable, Sendable {
        /// The file's name.
        public var file: String
        public var sha256: String
        /// Trajectories of each pair, in plan order.
        public var groups: [Int]

        public init(file: String, sha256: String, groups: [Int]) {
            self.file = file
            self.sha256 = sha256
            self.groups = groups
        }
    }

    public var generator: Generator
    public var annotator: Annotator
    /// The class pairs (a, b), in plan order.
    public var pairs: [[Int]]
    /// Trajectories per pair; with `pairWeights`, the budget is this times the pairs.
    public var groupsPerPair: Int
    /// Present only when `--pair-weights` allocated the trajectories.
    public var pairWeights: PairWeightsUse?
    public var shardSize: Int
    /// Shard files of the whole run.
    public var numShards: Int
    public var classNames: [String]
    /// [H, W, C] of the images.
    public var image: [Int]

    /// The configuration of a run of `plan` (made with `--shard-size shardSize`).
    public init(generator: Generator, annotator: Annotator, plan: GenerationPlan, shardSize: Int, classNames: [String], image: [Int],
                pairWeights: PairWeightsUse? = nil) {
        self.generator = generator
        self.annotator = annotator
        pairs = plan.pairs.map { [$0.a, $0.b] }
        groupsPerPair = plan.groupsPerPair
        self.pairWeights = pairWeights
        self.shardSize = shardSize
        numShards = plan.shardCount
        self.classNames = classNames
        self.image = image
    }

    enum CodingKeys: String, CodingKey {
        case generator, annotator, pairs, image
        case groupsPerPair = "groups_per_pair", shardSize = "shard_size", numShards = "num_shards", classNames = "class_names"
        case pairWeights = "pair_weights"
    }

    /// The configuration as the manifest stores it (and as it reads back from one).
    public func json() throws -> JSONValue { try JSONValue(encoding: self) }

    /// The `generator` attribute of the shards: compact JSON with sorted keys.
    public func generatorJSON() throws -> String { try Self.text(generator) }

    /// The `annotator` attribute of the shards: compact JSON with sorted keys.
    public func annotatorJSON() throws -> String { try Self.text(annotator) }

    private static func text(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

import CSMDiffusion
import CSMFormats
import CSMModels
import CSMNumerics
import CSMShards
import Foundation

/// One `csm generate` run, set up from its files and settings: the EDM model, the classifier
/// and the prototypes made with it (checked by SHA-256), the pair weights if any, the plan,
/// and the configuration recorded in every shard and the manifest (docs/formats/csm-shard.md).
public struct GenerationRun {
    /// The files a run reads.
    public struct Files {
        public var model: String
        public var classifier: String
        public var prototypes: String
        /// A `csm-pair-weights/1` file allocating the trajectories (docs/formats/pair-weights.md).
        public var pairWeights: String?

        public init(model: String, classifier: String, prototypes: String, pairWeights: String? = nil) {
            self.model = model
            self.classifier = classifier
            self.prototypes = prototypes
            self.pairWeights = pairWeights
        }
    }

    /// The settings of a run, as `csm generate` takes them.
    public struct Settings {
        /// Class pairs: `all`, or `A:B,C:D,…` (indices or names).
        public var pairs = "all"
        /// Trajectories per pair; with pair weights, the budget is this times the pairs.
        public var groupsPerPair = 2
        public var lambdas = 8
        public var seed: UInt64 = 0
        public var sampler = SamplerSettings()
        public var precision: Precision = .fp32
        /// Images per network batch.
        public var batch = 64
        public var sharpness = 10.0
        public var consistencyMargin = 0.25
        public var shardSize = 512

        public init() {}
    }

    /// Makes the shards.
    public let generator: ShardGenerator
    /// Which groups go in which shard.
    public var plan: GenerationPlan { generator.plan }
    /// The weights file's use, when the trajectories were allocated by one.
    public let pairWeights: GenerationConfig.PairWeightsUse?

    /// Reads and checks `files` and builds the plan and the generator for `settings`.
    public init(files: Files, settings: Settings, createdBy: String) throws {
        let net = try EDMModel(path: files.model, precision: settings.precision)
        let classifier = try ResNetClassifier(path: files.classifier)
        let classifierSHA = try FileHash.sha256(ofFile: files.classifier)
        let prototypes = try ClassPrototypes(path: files.prototypes)
        guard prototypes.classifierSHA256 == classifierSHA else {
            throw FileError(files.prototypes, "the prototypes were made with another classifier (SHA-256 differs); rerun `csm prototypes`")
        }
        let names = net.classNames ?? classifier.classNames
        let pairs = try ClassPair.parse(settings.pairs, classNames: names, classCount: net.labelDimension)
        guard settings.groupsPerPair >= 1 else { throw PlanError("--groups-per-pair must be at least 1") }
        let plan: GenerationPlan
        if let path = files.pairWeights {
            let counts = try PairWeights.read(from: path).allocation(pairs: pairs, total: pairs.count * settings.groupsPerPair,
                                                                     classNames: names, path: path)
            pairWeights = .init(file: (path as NSString).lastPathComponent, sha256: try FileHash.sha256(ofFile: path), groups: counts)
            plan = try GenerationPlan(pairs: pairs, groupCounts: counts, lambdas: settings.lambdas, seed: settings.seed,
                                      shardSize: settings.shardSize)
        } else {
            pairWeights = nil
            plan = try GenerationPlan(pairs: pairs, groupsPerPair: settings.groupsPerPair, lambdas: settings.lambdas, seed: settings.seed,
                                      shardSize: settings.shardSize)
        }
        let config = GenerationConfig(
            generator: .init(model: (files.model as NSString).lastPathComponent, modelSHA256: try FileHash.sha256(ofFile: files.model),
                             sampler: .init(settings.sampler, precision: settings.precision.rawValue), seed: settings.seed,
                             lambdas: settings.lambdas),
            annotator: .init(classifier: (files.classifier as NSString).lastPathComponent, classifierSHA256: classifierSHA,
                             prototypesSHA256: try FileHash.sha256(ofFile: files.prototypes), sharpness: settings.sharpness,
                             consistencyMargin: settings.consistencyMargin),
            plan: plan, shardSize: settings.shardSize, classNames: names, image: [net.resolution, net.resolution, net.channels],
            pairWeights: pairWeights)
        generator = try ShardGenerator(
            plan: plan, sampler: EDMSampler(model: net, settings: settings.sampler), classifier: classifier,
            reannotation: Reannotation(prototypes: prototypes.prototypes, sharpness: settings.sharpness, margin: settings.consistencyMargin),
            batch: settings.batch, config: config, createdBy: createdBy)
    }

    /// Images in `shards`.
    public func images(in shards: [Int]) -> Int {
        shards.reduce(0) { $0 + plan.groups(ofShard: $1).count * plan.lambdas }
    }

    /// Generates `shards` into `directory` one after the other, each recorded in `manifest`
    /// as it is written; `progress(images)` counts the images done so far, evaluations of
    /// the shard in flight included.
    public func generate(_ shards: [Int], into directory: String, manifest: inout Manifest,
                         progress: @escaping (Int) -> Void = { _ in }) throws -> GenerationSummary {
        var summary = GenerationSummary(lambdas: plan.lambdas)
        var done = 0
        for index in shards {
            let base = done, images = images(in: [index])
            let result = try generator.generate(shard: index, into: directory, manifest: &manifest) { evaluated, total in
                progress(base + evaluated * images / max(1, total))
            }
            summary.add(result)
            done += images
            progress(done)
        }
        return summary
    }
}

import CSMDiffusion
import CSMFormats
import CSMModels
import CSMNumerics
import CSMRandom
import CSMShards
import Foundation

/// csm's generation job: for each shard file of a plan, sample its trajectories, reannotate
/// them with the classifier and prototypes, and write the shard and the manifest.
///
/// A sample that turns non-finite stops the run with an error naming its seed, and a stop
/// request (`Interruption`) abandons the shard in flight; in both cases nothing of that
/// shard is written.
///
/// Crash safety: a shard is written under a temporary name and renamed when complete; the
/// manifest is replaced atomically after each shard and lists only finished shards. A rerun
/// skips the shards the manifest lists (after checking their SHA-256) and writes the rest, so
/// it ends with the same bytes as an uninterrupted run. A directory made with another
/// configuration is refused.
public final class ShardGenerator {
    public let plan: GenerationPlan
    public let sampler: EDMSampler
    public let classifier: ResNetClassifier
    public let reannotation: Reannotation
    public let batch: Int
    /// Run description stored in the manifest's `config`; runs must agree on it to share a directory.
    public let config: JSONValue
    /// Per-shard provenance stored as the shards' `generator` and `annotator` attributes.
    public let generatorJSON: String
    public let annotatorJSON: String
    public let classNames: [String]
    public let createdBy: String

    public init(plan: GenerationPlan, sampler: EDMSampler, classifier: ResNetClassifier, reannotation: Reannotation,
                batch: Int, config: GenerationConfig, createdBy: String) throws {
        let model = sampler.model
        guard model.labelDimension == classifier.numClasses else {
            throw PlanError("the model has \(model.labelDimension) classes but the classifier has \(classifier.numClasses)")
        }
        guard model.resolution == classifier.inputHeight, model.resolution == classifier.inputWidth,
              model.channels == classifier.inputChannels else {
            throw PlanError("the model makes \(model.resolution)×\(model.resolution)×\(model.channels) images but the classifier takes \(classifier.inputHeight)×\(classifier.inputWidth)×\(classifier.inputChannels)")
        }
        guard reannotation.prototypes.count == classifier.numClasses,
              reannotation.prototypes.allSatisfy({ $0.count == classifier.featureDimension }) else {
            throw PlanError("the prototypes do not match the classifier's \(classifier.numClasses) classes × \(classifier.featureDimension) features")
        }
        for pair in plan.pairs where max(pair.a, pair.b) >= model.labelDimension {
            throw PlanError("pair \(pair) names a class the model does not have")
        }
        self.plan = plan
        self.sampler = sampler
        self.classifier = classifier
        self.reannotation = reannotation
        self.batch = max(1, batch)
        // Compare configurations as they read back from a manifest (80.0 reads back as 80).
        self.config = try config.json()
        self.generatorJSON = try config.generatorJSON()
        self.annotatorJSON = try config.annotatorJSON()
        self.classNames = config.classNames
        self.createdBy = createdBy
    }

    /// File name of shard `index`.
    public static func fileName(ofShard index: Int) -> String { String(format: "mixed-%05d.h5", index) }

    /// The manifest in `directory`, created or checked against this run's configuration.
    public func openManifest(in directory: String) throws -> Manifest {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent("manifest.json")
        guard FileManager.default.fileExists(atPath: path) else { return Manifest(config: config) }
        let manifest = try Manifest.read(from: path)
        guard manifest.config == config else {
            throw PlanError("\(path): this directory holds a run with another configuration; use a new --out directory")
        }
        return manifest
    }

    /// Shards of `shards` that are not finished yet in `manifest` (a listed shard whose file
    /// is missing or altered is redone).
    public func pending(_ shards: [Int], manifest: Manifest, directory: String) -> [Int] {
        shards.filter { index in
            guard let entry = manifest.shards.first(where: { $0.shardIndex == index }) else { return true }
            let file = (directory as NSString).appendingPathComponent(entry.file)
            return (try? FileHash.sha256(ofFile: file)) != entry.sha256
        }
    }

    /// Generates shard `index` into `directory` and records it in the manifest there.
    /// `progress(done, total)` counts this shard's network evaluations × images.
    @discardableResult
    public func generate(shard index: Int, into directory: String, manifest: inout Manifest,
                         progress: ((Int, Int) -> Void)? = nil) throws -> ShardResult {
        let result = try makeSamples(shard: index, progress: progress)
        let samples = result.samples
        let metadata = ShardMetadata(kind: .mixed, classNames: classNames, sharpness: reannotation.sharpness,
                                     generator: generatorJSON, annotator: annotatorJSON,
                                     shardIndex: index, numShards: plan.shardCount, createdBy: createdBy)
        let name = Self.fileName(ofShard: index)
        let path = (directory as NSString).appendingPathComponent(name)
        try ShardWriter().write(samples, metadata: metadata, to: path)
        manifest.record(.init(file: name, count: samples.count, sha256: try FileHash.sha256(ofFile: path), shardIndex: index))
        try manifest.write(to: (directory as NSString).appendingPathComponent("manifest.json"))
        return result
    }

    /// Samples, quantises and reannotates the groups of shard `index`.
    public func makeSamples(shard index: Int, progress: ((Int, Int) -> Void)? = nil) throws -> ShardResult {
        let model = sampler.model
        let groups = plan.groups(ofShard: index)
        let l = plan.lambdas, k = model.labelDimension
        let c = model.channels, h = model.resolution, w = model.resolution, per = c * h * w
        let n = groups.count * l

        let latents = TrajectoryInputs.latents(seeds: groups.map(plan.latentSeed(ofGroup:)), size: per, repeats: l)
        var classes = [Float](), churnSeeds = [UInt64]()
        for group in groups {
            let seed = plan.latentSeed(ofGroup: group)
            let pair = plan.pair(ofGroup: group)
            for i in 0..<l {
                classes += plan.classVector(pair, sample: i, classCount: k)
                churnSeeds.append(deriveSeed(seed, UInt64(i)))
            }
        }
        let noise = FeatureMap(nchw: latents, count: n, channels: c, height: h, width: w)

        // Sample in batches; the images come back NHWC, as shards store them.
        var pixels = [UInt8](repeating: 0, count: n * per)
        let evaluations = sampler.settings.evaluationsPerImage
        var start = 0
        while start < n {
            let end = min(n, start + batch)
            let done = start
            // A stop request abandons the shard here: nothing of it has been written.
            try Interruption.check()
            let images: FeatureMap
            do {
                images = try sampler.sample(latents: noise.slice(start..<end), classLabels: Array(classes[(start * k)..<(end * k)]),
                                            churnSeeds: Array(churnSeeds[start..<end])) { step, total in
                    progress?(done * evaluations + (end - done) * step * evaluations / total, n * evaluations)
                }
            } catch let failure as NonFiniteSample {
                let s = start + failure.image
                let group = groups[s / l], pair = plan.pair(ofGroup: group)
                throw PlanError("shard \(index), group \(group) (seed \(plan.latentSeed(ofGroup: group)), pair \(pair.a):\(pair.b), "
                                + "λ_gen \(plan.lambda(s % l))): \(failure); nothing of this shard was written (a model "
                                + "with extreme weights, or one that does not match the sampler)")
            }
            for (j, value) in images.values.enumerated() {
                pixels[start * per + j] = PixelQuantization.uint8(value)
            }
            start = end
        }

        // Reannotate.
        let (features, logits) = classifier.forward(pixels: pixels, count: n)
        let f = classifier.featureDimension
        var samples = ShardSamples(height: h, width: w, channels: c, numClasses: k, images: pixels,
                                   labels: [Float](repeating: 0, count: n * k), classA: [], classB: [], lambdaGen: [],
                                   lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
        var topClasses: [Int] = []
        for (g, group) in groups.enumerated() {
            let pair = plan.pair(ofGroup: group)
            for i in 0..<l {
                let s = g * l + i
                let annotation = reannotation.annotate(features: features[(s * f)..<((s + 1) * f)],
                                                       logits: logits[(s * k)..<((s + 1) * k)], a: pair.a, b: pair.b)
                samples.labels[s * k + pair.a] += annotation.ratio
                samples.labels[s * k + pair.b] += 1 - annotation.ratio
                samples.classA.append(Int32(pair.a))
                samples.classB.append(Int32(pair.b))
                samples.lambdaGen.append(plan.lambda(i))
                samples.lambdaProj.append(annotation.projection)
                samples.probA.append(annotation.probabilityA)
                samples.probB.append(annotation.probabilityB)
                samples.consistent.append(annotation.consistent ? 1 : 0)
                samples.group.append(Int64(group))
                samples.seed.append(Int64(bitPattern: plan.latentSeed(ofGroup: group)))
                topClasses.append(annotation.topClass)
            }
        }
        return ShardResult(samples: samples, topClasses: topClasses)
    }
}

/// One generated shard: its samples and the classifier's top-1 class of each.
public struct ShardResult: Sendable {
    public let samples: ShardSamples
    public let topClasses: [Int]

    public init(samples: ShardSamples, topClasses: [Int]) {
        self.samples = samples
        self.topClasses = topClasses
    }
}

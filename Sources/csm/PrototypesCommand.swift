import ArgumentParser
import CSMFormats
import CSMModels
import CSMPipeline
import CSMShards
import Foundation

/// `csm prototypes`: class prototypes μ_k = mean penultimate feature of the classifier over
/// the real images of class k, the reference points of calibrated reannotation.
struct PrototypesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prototypes",
        abstract: "Compute class prototypes (mean classifier features per class) from real-data shards.",
        discussion: """
            --data is a manifest, a folder of shards (those its manifest.json lists, else every *.h5) \
            or one shard. Features are summed in float64. The output is a csm-prototypes/1 \
            safetensors file (tensors 'prototypes' [K, F] and 'counts' [K]) tied to the classifier \
            by its SHA-256.

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm prototypes --data data/real-train --out prototypes.safetensors
            """)

    @Option(help: ArgumentHelp("Real-data shard or folder of shards (from csm import).", valueName: "path"))
    var data: String

    @Option(help: ArgumentHelp("Classifier (default: the Fashion-MNIST ResNet-20).", valueName: "file"))
    var classifier: String?

    @Option(help: ArgumentHelp("Output safetensors file.", valueName: "file"))
    var out: String

    @Option(help: "Images per classifier forward pass.")
    var batchSize = 256

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
    }

    func run() throws {
        let classifierPath = try classifier ?? DefaultFiles.locate(DefaultFiles.classifier)
        let model = try ResNetClassifier(path: classifierPath)
        let shards = try ShardPaths(resolving: data).files.map { try ShardReader(path: $0) }
        guard !shards.isEmpty else { throw CLIError("\(data): holds no shards") }
        if shards[0].numClasses == model.numClasses, shards[0].metadata.classNames != model.classNames {
            printError("warning: \(shards[0].path): class names differ from \(classifierPath)'s; using the classifier's")
        }
        let total = shards.reduce(0) { $0 + $1.count }
        let progress = ProgressReporter("features", total: total, unit: "images")
        var accumulator = ClassPrototypeAccumulator(numClasses: model.numClasses, featureDimension: model.featureDimension)
        var done = 0
        let start = Date()
        for shard in shards {
            try accumulator.add(shard: shard, classifier: model, batchSize: batchSize) { progress.update(done + $0) }
            done += shard.count
        }
        let empty = accumulator.counts.indices.filter { accumulator.counts[$0] == 0 }
        guard empty.isEmpty else {
            throw CLIError("\(data): no images of class \(empty.map { model.classNames[$0] }.joined(separator: ", "))")
        }
        let prototypes = ClassPrototypes(
            prototypes: accumulator.means, counts: accumulator.counts.map { Float($0) },
            classifierSHA256: try FileHash.sha256(ofFile: classifierPath),
            classifier: (classifierPath as NSString).lastPathComponent, classNames: model.classNames, source: data)
        try prototypes.write(to: out)
        print(String(format: "prototypes of %d classes × %d features from %d images (%d shard%@) → %@ (%.1f s)",
                     model.numClasses, model.featureDimension, total, shards.count, shards.count == 1 ? "" : "s", out, Date().timeIntervalSince(start)))
    }
}

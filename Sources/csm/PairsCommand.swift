import ArgumentParser
import CSMCalibration
import CSMFormats
import CSMPictures
import CSMPipeline
import CSMTraining
import Foundation

/// `csm pairs`: which class pairs a classifier confuses, as weights for `csm generate
/// --pair-weights`.
struct PairsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs",
        abstract: "Weigh the class pairs by how often and how confidently a classifier confuses them.",
        discussion: """
            Runs the classifier on labelled shards (use a validation split, not the test split) \
            and scores each unordered pair (a, b) by its confident confusion: over the samples of \
            a classified as b and of b classified as a, the sum of the classifier's probability \
            for the wrong class. The weights share 1 − --floor in proportion to the scores and \
            spread --floor evenly over every pair, so no pair gets zero. `csm generate \
            --pair-weights FILE` then spends its budget of --groups-per-pair × pairs trajectories \
            by these weights, at least one per pair. The file is JSON, csm-pair-weights/1 \
            (docs/formats/pair-weights.md).

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm split data/real-train --fraction 0.1 --seed 0 --out data/real-val
              csm pairs --data data/real-val --out weights.json --picture confusion.png
              csm generate --out data/weighted --pair-weights weights.json \\
                  --groups-per-pair 16
            """)

    @Option(help: ArgumentHelp("Classifier (default: the Fashion-MNIST ResNet-20).", valueName: "file"))
    var classifier: String?

    @Option(help: ArgumentHelp("Labelled shards to measure the confusion on (real samples; mixed ones count as their top class).",
                               valueName: "dir"))
    var data: String

    @Option(help: ArgumentHelp("The weights file to write.", valueName: "file.json"))
    var out: String

    @Option(help: ArgumentHelp("Also draw the confusion matrix.", valueName: "file.png"))
    var picture: String?

    @Option(help: "Share of the budget spread evenly over all pairs, in [0, 1].")
    var floor: Double = 0.1

    @Option(help: "Pairs listed on the screen.")
    var top: Int = 10

    func validate() throws {
        guard floor.isFinite, floor >= 0, floor <= 1 else { throw ValidationError("--floor must lie in [0, 1], got \(floor)") }
        guard top >= 0 else { throw ValidationError("--top must be non-negative") }
    }

    func run() throws {
        try pairs()
    }

    private func pairs() throws {
        let classifierPath = try classifier ?? DefaultFiles.locate(DefaultFiles.classifier)
        let network = try ClassifierLogits(path: classifierPath)
        let set = try network.evaluationSet(data: data)
        guard case .float(let logits) = set.values else { throw CLIError("\(classifierPath): unexpected logits") }
        let k = set.classCount
        let probabilities = try Softmax.probabilities(logits: logits.map(Double.init), classCount: k)
        let counts = PairWeights.confusion(probabilities: probabilities, labels: set.labels, classCount: k).counts
        let correct = (0..<k).reduce(0) { $0 + counts[$1 * k + $1] }
        let source = PairWeights.Source(classifier: (classifierPath as NSString).lastPathComponent,
                                        classifierSHA256: try FileHash.sha256(ofFile: classifierPath), data: data,
                                        samples: set.sampleCount, accuracy: Double(correct) / Double(set.sampleCount))
        let weights = try PairWeights(probabilities: probabilities, labels: set.labels, classNames: network.classNames, floor: floor,
                                      source: source)
        try weights.write(to: out)

        print(String(format: "%@ on %@: %d samples, accuracy %.2f%%", source.classifier, data, set.sampleCount, 100 * source.accuracy))
        print(weights.table(top: top))
        printError("wrote \(out): \(weights.pairs.count) pairs, floor \(floor)")
        if let picture {
            try ConfusionMatrixPicture.draw(counts: counts, classNames: network.classNames,
                                            title: "\(source.classifier) on \(set.sampleCount) samples").writePNG(path: picture)
            printError("wrote \(picture)")
        }
    }
}

import ArgumentParser
import CSMCalibration
import CSMPictures
import CSMTraining
import Foundation

/// `csm evaluate`: calibration metrics of a classifier's logits, optional temperature
/// scaling fitted on validation logits, and a reliability diagram.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure calibration from logits or a classifier: accuracy, NLL, Brier, ECE, MCE, AdaECE, class-wise ECE.",
        discussion: """
            Logits and labels come from safetensors files (tensors 'logits' [N, K] and 'labels') or \
            .npy arrays ('<f4', '<f8', '<i8', '<i4', C order). Labels are class ids [N] or one-hot / \
            soft rows [N, K], whose argmax is taken. One safetensors file may hold both.

            ECE, MCE and class-wise ECE use equal-width bins (lo, hi], AdaECE equal-count bins. \
            With --val-logits, a temperature T is fitted on the validation set by minimising its NLL \
            and the metrics are shown before and after dividing the logits by T.

            With --classifier, the logits come from running a classifier file (resnet-classifier/1 \
            or linear-classifier/1) on shards (--data; labels: real classes, or the argmax of \
            mixed soft labels), and T is fitted on --val-data; --save-logits keeps them.

            --bootstrap N resamples the evaluated samples with replacement N times (seeded by \
            --bootstrap-seed, the same interval on every run) and reports the 2.5% and 97.5% \
            percentiles of their ECE (same bins; numpy.percentile's linear interpolation) as a 95% \
            interval, before and, with a fitted temperature, after temperature scaling.

            --json keys: samples, classes, bins, logits, accuracy, nll, brier, ece, mce, adaece, \
            cece, reliability (equal-width bins: lower, upper, count, confidence, accuracy); with \
            --classifier: classifier, data; with --bootstrap: ece_ci [lo, hi], bootstrap \
            (resamples, seed, level); with a fitted temperature: temperature (T), temperature_fit \
            (value, val_nll_before, val_nll_after, at_boundary, fitted_on), ts_accuracy, ts_nll, \
            ts_brier, ts_ece, ts_mce, ts_adaece, ts_cece, calibrated (the same metrics as an \
            object, with reliability), and with --bootstrap ts_ece_ci.

            Examples:
              csm import fashion-mnist --split test --out data/real-test
              csm evaluate --data data/real-test --save-logits test.safetensors \\
                  --classifier Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors
              csm evaluate --logits test.safetensors --diagram rel.png
              csm evaluate --logits test.safetensors --bootstrap 1000 --json
              csm import fashion-mnist --split train --out data/real-train
              csm split data/real-train --fraction 0.1 --seed 0 --out data/real-val
              csm evaluate --data data/real-test --val-data data/real-val \\
                  --classifier Datasets/fashion-mnist/fashion-mnist-resnet20.safetensors
            """)

    @Option(help: ArgumentHelp("Logits [N, K]: .safetensors or .npy.", valueName: "file"))
    var logits: String?

    @Option(help: ArgumentHelp("A classifier file to run on --data instead of reading --logits.", valueName: "file"))
    var classifier: String?

    @Option(help: ArgumentHelp("Shards to run --classifier on.", valueName: "dir"))
    var data: String?

    @Option(help: ArgumentHelp("Shards to fit the temperature on with --classifier.", valueName: "dir"))
    var valData: String?

    @Option(help: ArgumentHelp("With --classifier: write the logits and labels of --data (safetensors 'logits', 'labels').",
                               valueName: "file.safetensors"))
    var saveLogits: String?

    @Option(help: ArgumentHelp(
        "Labels: class ids [N] or one-hot/soft rows [N, K] (default: the logits file, when it is safetensors).",
        valueName: "file"))
    var labels: String?

    @Option(help: "Bins of ECE, MCE, AdaECE and class-wise ECE.")
    var bins = 15

    @Option(help: ArgumentHelp("Validation logits to fit a temperature on.", valueName: "file"))
    var valLogits: String?

    @Option(help: ArgumentHelp("Validation labels (default: the validation logits file, when it is safetensors).", valueName: "file"))
    var valLabels: String?

    @Option(help: ArgumentHelp("Write a reliability diagram PNG (two panels when a temperature is fitted).", valueName: "file.png"))
    var diagram: String?

    @Option(help: "Name of the logits tensor in safetensors files.")
    var logitsTensor = "logits"

    @Option(help: "Name of the labels tensor in safetensors files.")
    var labelsTensor = "labels"

    @Option(help: ArgumentHelp("Bootstrap resamples for a 95% interval of ECE (0: off).", valueName: "n"))
    var bootstrap = 0

    @Option(help: ArgumentHelp("Seed of the bootstrap draws.", valueName: "s"))
    var bootstrapSeed: UInt64 = 0

    @Flag(help: "Print JSON (keys listed above) instead of a table.")
    var json = false

    func validate() throws {
        guard bins > 0 else { throw ValidationError("--bins must be positive, got \(bins)") }
        guard bootstrap >= 0 else { throw ValidationError("--bootstrap must be 0 (off) or a positive count, got \(bootstrap)") }
        guard (logits == nil) != (classifier == nil) else { throw ValidationError("give either --logits or --classifier") }
        if classifier != nil {
            guard data != nil else { throw ValidationError("--classifier needs --data") }
            guard labels == nil, valLogits == nil else { throw ValidationError("--labels and --val-logits go with --logits, not --classifier") }
        } else if data != nil || valData != nil || saveLogits != nil {
            throw ValidationError("--data, --val-data and --save-logits go with --classifier")
        }
        if valLabels != nil && valLogits == nil {
            throw ValidationError("--val-labels needs --val-logits")
        }
    }

    func run() throws {
        let reader = EvaluationInputReader(logitsTensor: logitsTensor, labelsTensor: labelsTensor)
        let test: EvaluationSet
        var validation: EvaluationSet?
        if let classifier, let data {
            let runner = try ClassifierLogits(path: classifier)
            test = try runner.evaluationSet(data: data)
            if let saveLogits { try test.save(to: saveLogits) }
            validation = try valData.map { try runner.evaluationSet(data: $0) }
        } else {
            test = try reader.read(logits: logits ?? "", labels: labels)
            validation = try valLogits.map { try reader.read(logits: $0, labels: valLabels) }
        }
        var report = try CalibrationReport(test: test, validation: validation, validationSource: valData ?? valLogits ?? "",
                                           binCount: bins, bootstrap: bootstrap, seed: bootstrapSeed)
        if let classifier, let data { report.inputs = ["classifier": classifier, "data": data] }

        if let diagram {
            var panels = [ReliabilityDiagram.Panel(title: report.calibrated == nil ? "Reliability" : "Uncalibrated", metrics: report.metrics)]
            if let calibrated = report.calibrated, let fit = report.fit {
                panels.append(.init(title: String(format: "T = %.4g", fit.temperature.temperature), metrics: calibrated))
            }
            // A failed write throws a FileError, whose message names the file.
            try ReliabilityDiagram(panels: panels).writePNG(path: diagram)
        }
        print(json ? report.json : report.table)
    }
}

import ArgumentParser
import CSMCalibration
import CSMFormats
import CSMModels
import CSMPictures
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
        if let classifier, let data {
            let runner = try ClassifierLogits(path: classifier)
            test = try runner.evaluationSet(data: data)
            if let saveLogits { try test.save(to: saveLogits) }
        } else {
            test = try reader.read(logits: logits ?? "", labels: labels)
        }
        let raw = try test.metrics(binCount: bins, temperature: 1)

        var fit: TemperatureFit?
        var validationFile: String?
        var calibrated: CalibrationMetrics?
        if let classifier, let valData {
            let validation = try ClassifierLogits(path: classifier).evaluationSet(data: valData)
            let fitted = try validation.fitTemperature()
            fit = fitted
            validationFile = valData
            calibrated = try test.metrics(binCount: bins, temperature: fitted.temperature)
        } else if let valLogits {
            let validation = try reader.read(logits: valLogits, labels: valLabels)
            guard validation.classCount == test.classCount else {
                throw FileError(
                    valLogits, "\(validation.classCount) classes, but \(test.logitsPath) has \(test.classCount)")
            }
            let fitted = try validation.fitTemperature()
            fit = fitted
            validationFile = valLogits
            calibrated = try test.metrics(binCount: bins, temperature: fitted.temperature)
        }

        let interval = bootstrap > 0 ? try test.eceInterval(binCount: bins, temperature: 1, resamples: bootstrap, seed: bootstrapSeed) : nil
        let calibratedInterval = try fit.flatMap { fit in
            bootstrap > 0 ? try test.eceInterval(binCount: bins, temperature: fit.temperature, resamples: bootstrap, seed: bootstrapSeed) : nil
        }
        let intervals = Intervals(raw: interval, calibrated: calibratedInterval)

        if let diagram {
            var panels = [ReliabilityDiagram.Panel(title: calibrated == nil ? "Reliability" : "Uncalibrated", metrics: raw)]
            if let calibrated, let fit {
                panels.append(.init(title: String(format: "T = %.4g", fit.temperature), metrics: calibrated))
            }
            // A failed write throws a FileError, whose message names the file.
            try ReliabilityDiagram(panels: panels).writePNG(path: diagram)
        }

        if json {
            print(try jsonReport(raw: raw, fit: fit, validationFile: validationFile, calibrated: calibrated, intervals: intervals,
                                 source: test.logitsPath))
        } else {
            print(table(raw: raw, fit: fit, validationFile: validationFile, calibrated: calibrated, intervals: intervals,
                        source: test.logitsPath))
        }
    }

    // MARK: - Output

    /// The bootstrap intervals of ECE before and after temperature scaling, when asked for.
    struct Intervals {
        var raw: BootstrapInterval?
        var calibrated: BootstrapInterval?
    }

    private func table(
        raw: CalibrationMetrics, fit: TemperatureFit?, validationFile: String?, calibrated: CalibrationMetrics?,
        intervals: Intervals, source: String
    ) -> String {
        var lines = ["\(source): \(raw.sampleCount) samples × \(raw.classCount) classes, \(raw.binCount) bins"]
        var header = ["metric", "value"]
        var columns = [raw]
        if let fit, let calibrated, let validationFile {
            let boundary = fit.atBoundary ? " (at the end of the search range)" : ""
            lines.append(String(
                format: "temperature %.4f%@, fitted on %@: NLL %.6f -> %.6f", fit.temperature, boundary,
                validationFile, fit.nllBefore, fit.nllAfter))
            header = ["metric", "uncalibrated", String(format: "T = %.4f", fit.temperature)]
            columns.append(calibrated)
        }
        lines.append("")
        let names = raw.namedValues.map(\.name)
        let rows = names.indices.map { i in [names[i]] + columns.map { String(format: "%.6f", $0.namedValues[i].value) } }
        let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "   ")
        }
        lines.append(format(header))
        lines.append(format(widths.map { String(repeating: "-", count: $0) }))
        lines += rows.map(format)
        func describe(_ interval: BootstrapInterval, _ what: String) -> String {
            String(format: "ECE %.0f%% interval%@ (%d bootstrap resamples): [%.6f, %.6f]", interval.level * 100, what,
                   interval.resamples, interval.lower, interval.upper)
        }
        if let interval = intervals.raw {
            lines.append("")
            lines.append(describe(interval, fit == nil ? "" : " before temperature scaling"))
        }
        if let interval = intervals.calibrated { lines.append(describe(interval, " after temperature scaling")) }
        return lines.joined(separator: "\n")
    }

    private func jsonReport(
        raw: CalibrationMetrics, fit: TemperatureFit?, validationFile: String?, calibrated: CalibrationMetrics?,
        intervals: Intervals, source: String
    ) throws -> String {
        func metricsObject(_ m: CalibrationMetrics) -> [String: Any] {
            var object: [String: Any] = [:]
            for (name, value) in m.namedValues { object[name] = value }
            object["reliability"] = m.bins.map {
                ["lower": $0.lower, "upper": $0.upper, "count": $0.count, "confidence": $0.meanConfidence, "accuracy": $0.accuracy] as [String: Any]
            }
            return object
        }
        var report = metricsObject(raw)
        report["samples"] = raw.sampleCount
        report["classes"] = raw.classCount
        report["bins"] = raw.binCount
        report["logits"] = source
        if let classifier, let data {
            report["classifier"] = classifier
            report["data"] = data
        }
        if let fit, let calibrated, let validationFile {
            report["temperature"] = fit.temperature
            report["temperature_fit"] = [
                "value": fit.temperature, "val_nll_before": fit.nllBefore, "val_nll_after": fit.nllAfter,
                "at_boundary": fit.atBoundary, "fitted_on": validationFile,
            ] as [String: Any]
            report["calibrated"] = metricsObject(calibrated)
            for (name, value) in calibrated.namedValues { report["ts_" + name] = value }
        }
        if let interval = intervals.raw {
            report["ece_ci"] = [interval.lower, interval.upper]
            report["bootstrap"] = ["resamples": interval.resamples, "seed": NSNumber(value: interval.seed), "level": interval.level] as [String: Any]
        }
        if let interval = intervals.calibrated { report["ts_ece_ci"] = [interval.lower, interval.upper] }
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

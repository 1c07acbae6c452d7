import CSMFormats
import Foundation

/// What `csm evaluate` reports of one evaluation set: its metrics, and when a validation set
/// is given the temperature fitted on it with the metrics after temperature scaling, each
/// with a bootstrap interval of ECE when asked for; as a table for people or as JSON (the
/// keys `csm evaluate --help` lists).
public struct CalibrationReport {
    /// Where the logits came from (a file, or the shards a classifier ran on).
    public var source: String
    /// Metrics at T = 1.
    public var metrics: CalibrationMetrics
    /// The temperature fitted on the validation set, and where that set came from.
    public var fit: (temperature: TemperatureFit, fittedOn: String)?
    /// Metrics at the fitted temperature.
    public var calibrated: CalibrationMetrics?
    /// Bootstrap intervals of ECE at T = 1 and at the fitted temperature.
    public var interval: BootstrapInterval?
    public var calibratedInterval: BootstrapInterval?
    /// Extra string entries of the JSON report (csm evaluate's `classifier` and `data`).
    public var inputs: [String: String] = [:]

    /// Measures `test` with `binCount` bins; fits a temperature on `validation` (which must
    /// have as many classes; `validationSource` names it in errors and in the report) when
    /// given; with `bootstrap` > 0 resamples, adds the 95% intervals of ECE (seeded by `seed`).
    public init(test: EvaluationSet, validation: EvaluationSet? = nil, validationSource: String = "",
                binCount: Int, bootstrap: Int = 0, seed: UInt64 = 0) throws {
        source = test.logitsPath
        metrics = try test.metrics(binCount: binCount, temperature: 1)
        if let validation {
            guard validation.classCount == test.classCount else {
                throw FileError(validationSource, "\(validation.classCount) classes, but \(test.logitsPath) has \(test.classCount)")
            }
            let temperature = try validation.fitTemperature()
            fit = (temperature, validationSource)
            calibrated = try test.metrics(binCount: binCount, temperature: temperature.temperature)
        }
        if bootstrap > 0 {
            interval = try test.eceInterval(binCount: binCount, temperature: 1, resamples: bootstrap, seed: seed)
            if let fit {
                calibratedInterval = try test.eceInterval(binCount: binCount, temperature: fit.temperature.temperature,
                                                          resamples: bootstrap, seed: seed)
            }
        }
    }

    /// The metrics as an aligned table (one column per temperature), the fit and the intervals.
    public var table: String {
        var lines = ["\(source): \(metrics.sampleCount) samples × \(metrics.classCount) classes, \(metrics.binCount) bins"]
        var header = ["metric", "value"]
        var columns = [metrics]
        if let fit, let calibrated {
            let boundary = fit.temperature.atBoundary ? " (at the end of the search range)" : ""
            lines.append(String(format: "temperature %.4f%@, fitted on %@: NLL %.6f -> %.6f", fit.temperature.temperature, boundary,
                                fit.fittedOn, fit.temperature.nllBefore, fit.temperature.nllAfter))
            header = ["metric", "uncalibrated", String(format: "T = %.4f", fit.temperature.temperature)]
            columns.append(calibrated)
        }
        lines.append("")
        let names = metrics.namedValues.map(\.name)
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
        if let interval {
            lines.append("")
            lines.append(describe(interval, fit == nil ? "" : " before temperature scaling"))
        }
        if let calibratedInterval { lines.append(describe(calibratedInterval, " after temperature scaling")) }
        return lines.joined(separator: "\n")
    }

    /// The report as pretty-printed JSON with sorted keys.
    public var json: String {
        func metricsObject(_ m: CalibrationMetrics) -> [String: JSONValue] {
            var object: [String: JSONValue] = [:]
            for (name, value) in m.namedValues { object[name] = .double(value) }
            object["reliability"] = .array(m.bins.map {
                .object(["lower": .double($0.lower), "upper": .double($0.upper), "count": .int(Int64($0.count)),
                         "confidence": .double($0.meanConfidence), "accuracy": .double($0.accuracy)])
            })
            return object
        }
        var report = metricsObject(metrics)
        report["samples"] = .int(Int64(metrics.sampleCount))
        report["classes"] = .int(Int64(metrics.classCount))
        report["bins"] = .int(Int64(metrics.binCount))
        report["logits"] = .string(source)
        for (key, value) in inputs { report[key] = .string(value) }
        if let fit, let calibrated {
            report["temperature"] = .double(fit.temperature.temperature)
            report["temperature_fit"] = .object([
                "value": .double(fit.temperature.temperature), "val_nll_before": .double(fit.temperature.nllBefore),
                "val_nll_after": .double(fit.temperature.nllAfter), "at_boundary": .bool(fit.temperature.atBoundary),
                "fitted_on": .string(fit.fittedOn),
            ])
            report["calibrated"] = .object(metricsObject(calibrated))
            for (name, value) in calibrated.namedValues { report["ts_" + name] = .double(value) }
        }
        if let interval {
            report["ece_ci"] = .array([.double(interval.lower), .double(interval.upper)])
            report["bootstrap"] = .object(["resamples": .int(Int64(interval.resamples)), "seed": Int64(exactly: interval.seed).map(JSONValue.int) ?? .double(Double(interval.seed)),
                                           "level": .double(interval.level)])
        }
        if let calibratedInterval { report["ts_ece_ci"] = .array([.double(calibratedInterval.lower), .double(calibratedInterval.upper)]) }
        return JSONValue.object(report).prettyText
    }
}

import CSMCalibration
import CSMFormats
import Foundation
import XCTest

/// `csm evaluate`'s report, built from small evaluation sets whose metrics are known.
final class CalibrationReportTests: XCTestCase {
    /// Four samples, two classes, over-confident logits: three right, one wrong.
    func set(_ name: String, classes: Int = 2) -> EvaluationSet {
        let logits: [Float] = classes == 2 ? [4, 0, 0, 4, 4, 0, 4, 0] : [4, 0, 0, 0, 4, 0, 4, 0, 0, 4, 0, 0]
        return EvaluationSet(logitsPath: name, labelsPath: name, values: .float(logits), sampleCount: 4, classCount: classes,
                             labels: [0, 1, 0, 1])
    }

    func testTheTableAndJSONCarryTheMetricsTheFitAndTheIntervals() throws {
        let report = try CalibrationReport(test: set("test.safetensors"), validation: set("val.safetensors"),
                                           validationSource: "val.safetensors", binCount: 15, bootstrap: 50, seed: 3)
        let expected = try set("test.safetensors").metrics(binCount: 15, temperature: 1)
        XCTAssertEqual(report.metrics, expected)
        XCTAssertEqual(report.metrics.accuracy, 0.75)
        let fit = try XCTUnwrap(report.fit)
        XCTAssertEqual(fit.fittedOn, "val.safetensors")
        XCTAssertGreaterThan(fit.temperature.temperature, 1, "over-confident logits are cooled")
        XCTAssertEqual(report.calibrated, try set("test.safetensors").metrics(binCount: 15, temperature: fit.temperature.temperature))
        XCTAssertNotNil(report.interval)
        XCTAssertNotNil(report.calibratedInterval)

        let table = report.table
        XCTAssertTrue(table.hasPrefix("test.safetensors: 4 samples × 2 classes, 15 bins\ntemperature "), table)
        XCTAssertTrue(table.contains("uncalibrated"), table)
        XCTAssertTrue(table.contains(String(format: "T = %.4f", fit.temperature.temperature)), table)
        XCTAssertTrue(table.contains("(50 bootstrap resamples)"), table)

        var withInputs = report
        withInputs.inputs = ["classifier": "c.safetensors", "data": "data/test"]
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(withInputs.json.utf8))
        XCTAssertEqual(json["accuracy"], .double(0.75))
        XCTAssertEqual(json["samples"], .int(4))
        XCTAssertEqual(json["logits"], .string("test.safetensors"))
        XCTAssertEqual(json["classifier"], .string("c.safetensors"))
        XCTAssertEqual(json["temperature_fit"]?["fitted_on"], .string("val.safetensors"))
        XCTAssertEqual(json["bootstrap"]?["seed"], .int(3))
        XCTAssertNotNil(json["ts_ece"])
        XCTAssertNotNil(json["ts_ece_ci"])
        if case .array(let bins)? = json["reliability"] { XCTAssertEqual(bins.count, 15) } else { XCTFail("no reliability bins") }
    }

    func testWithoutValidationThereIsOneColumnAndNoTemperature() throws {
        let report = try CalibrationReport(test: set("test.npy"), binCount: 10)
        XCTAssertNil(report.fit)
        XCTAssertNil(report.calibrated)
        XCTAssertNil(report.interval)
        XCTAssertTrue(report.table.contains("metric"), report.table)
        XCTAssertFalse(report.table.contains("temperature"), report.table)
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(report.json.utf8))
        XCTAssertNil(json["temperature"])
        XCTAssertEqual(json["bins"], .int(10))
    }

    func testValidationWithOtherClassesIsRefusedNamingTheFile() {
        XCTAssertThrowsError(try CalibrationReport(test: set("test.npy"), validation: set("val.npy", classes: 3),
                                                   validationSource: "val.npy", binCount: 15)) { error in
            XCTAssertEqual((error as? FileError)?.description, "val.npy: 3 classes, but test.npy has 2")
        }
    }
}

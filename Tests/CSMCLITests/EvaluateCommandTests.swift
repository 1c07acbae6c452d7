import CSMFormats
import Foundation
import XCTest

final class EvaluateCommandTests: XCTestCase {
    let fixture = packageRoot().appendingPathComponent("Tests/Fixtures/calibration/synthetic-3000x10.safetensors").path

    func testJSONMatchesReferenceMetrics() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try runCSM(["evaluate", "--logits", fixture, "--json", "--diagram", dir + "/rel.png"])
        XCTAssertEqual(result.status, 0, result.err)
        let json = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as! [String: Any]
        let expected: [String: Double] = ["accuracy": 0.5556666666666666, "nll": 1.857949859512744, "brier": 0.6445608464544575,
                                          "ece": 0.1125033399099141, "mce": 0.26587700073512344, "adaece": 0.11225963492059457,
                                          "cece": 0.026024198681764754]
        for (key, value) in expected {
            XCTAssertEqual((json[key] as? NSNumber)?.doubleValue ?? .nan, value, accuracy: 1e-6, key)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/rel.png"))
    }

    func testTemperatureFitAndErrors() throws {
        let fitted = try runCSM(["evaluate", "--logits", fixture, "--val-logits", fixture, "--val-labels", fixture, "--json"])
        XCTAssertEqual(fitted.status, 0, fitted.err)
        let json = try JSONSerialization.jsonObject(with: Data(fitted.out.utf8)) as! [String: Any]
        XCTAssertEqual((json["temperature"] as? NSNumber)?.doubleValue ?? 0, 2.0, accuracy: 0.05)
        let fit = json["temperature_fit"] as? [String: Any]
        XCTAssertEqual((fit?["value"] as? NSNumber)?.doubleValue, (json["temperature"] as? NSNumber)?.doubleValue)

        let missing = try runCSM(["evaluate", "--logits", "/nonexistent/logits.npy", "--labels", "/nonexistent/labels.npy"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertEqual(missing.err.split(separator: "\n").count, 1, missing.err)
        XCTAssertTrue(missing.err.contains("/nonexistent/logits.npy"), missing.err)
    }

    /// --bootstrap: the same interval on every run, around the point estimate, before and
    /// after temperature scaling, in the JSON and in the table; another seed, another interval.
    func testBootstrapInterval() throws {
        let arguments = ["evaluate", "--logits", fixture, "--val-logits", fixture, "--bootstrap", "200", "--bootstrap-seed", "3"]
        let first = try runCSM(arguments + ["--json"])
        XCTAssertEqual(first.status, 0, first.err)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(first.out.utf8)) as? [String: Any])
        for key in ["accuracy", "nll", "brier", "ece", "adaece", "cece", "temperature", "ts_ece", "ts_nll"] {
            XCTAssertNotNil(json[key] as? Double, key)
        }
        let ci = try XCTUnwrap(json["ece_ci"] as? [Double])
        let tsCI = try XCTUnwrap(json["ts_ece_ci"] as? [Double])
        XCTAssertEqual(ci.count, 2)
        XCTAssertEqual(tsCI.count, 2)
        let ece = try XCTUnwrap(json["ece"] as? Double), tsECE = try XCTUnwrap(json["ts_ece"] as? Double)
        XCTAssertTrue(ci[0] <= ece && ece <= ci[1], "\(ci) around \(ece)")
        XCTAssertTrue(tsCI[0] <= tsECE && tsECE <= tsCI[1], "\(tsCI) around \(tsECE)")
        XCTAssertNotEqual(tsCI, ci)
        XCTAssertEqual((json["bootstrap"] as? [String: Any])?["resamples"] as? Int, 200)

        let again = try runCSM(arguments + ["--json"])
        XCTAssertEqual(again.out, first.out)
        let other = try runCSM(arguments.dropLast() + ["4", "--json"])
        let otherJSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(other.out.utf8)) as? [String: Any])
        XCTAssertNotEqual(otherJSON["ece_ci"] as? [Double], ci)

        let table = try runCSM(arguments)
        XCTAssertEqual(table.status, 0, table.err)
        XCTAssertTrue(table.out.contains(String(format: "ECE 95%% interval before temperature scaling (200 bootstrap resamples): [%.6f, %.6f]",
                                                ci[0], ci[1])), table.out)
        XCTAssertTrue(table.out.contains("ECE 95% interval after temperature scaling (200 bootstrap resamples): ["), table.out)
        let plain = try runCSM(["evaluate", "--logits", fixture, "--bootstrap", "50"])
        XCTAssertTrue(plain.out.contains("ECE 95% interval (50 bootstrap resamples): ["), plain.out)

        let negative = try runCSM(["evaluate", "--logits", fixture, "--bootstrap", "-1"])
        XCTAssertNotEqual(negative.status, 0)
        XCTAssertTrue(negative.err.contains("--bootstrap"), negative.err)
    }
}

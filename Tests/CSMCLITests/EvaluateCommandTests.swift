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
        let temperature = json["temperature"] as? [String: Any]
        XCTAssertEqual((temperature?["value"] as? NSNumber)?.doubleValue ?? 0, 2.0, accuracy: 0.05)

        let missing = try runCSM(["evaluate", "--logits", "/nonexistent/logits.npy", "--labels", "/nonexistent/labels.npy"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertEqual(missing.err.split(separator: "\n").count, 1, missing.err)
        XCTAssertTrue(missing.err.contains("/nonexistent/logits.npy"), missing.err)
    }
}

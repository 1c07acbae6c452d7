import CSMFormats
import CSMInspect
import Foundation
import XCTest

/// What `csm inspect --verify` prints and `--json` writes of a verification.
final class InspectOutputTests: XCTestCase {
    func report(problems: [FileError]) -> VerificationReport {
        var report = VerificationReport()
        report.shards = 2
        report.samples = 720
        report.bytes = 3 << 20
        report.problems = problems
        report.notes = ["2 shards of 2 in the manifest"]
        report.warnings = ["12 constant real images"]
        return report
    }

    func testTheTextNamesWhatWasCheckedEachFindingAndTheVerdict() {
        let clean = report(problems: []).text(path: "data/mixed", againstManifest: true)
        XCTAssertEqual(clean, """
            verify data/mixed: 2 shards, 720 samples, 3.00 MiB; SHA-256 and counts against the manifest; schema; every chunk through Fletcher-32; values
            note: 2 shards of 2 in the manifest
            warning: 12 constant real images
            verify: OK

            """)
        let damaged = report(problems: [FileError("data/mixed/mixed-00001.h5", dataset: "labels", "row 3 sums to 1.2"),
                                        FileError("data/mixed/mixed-00001.h5", "truncated")])
            .text(path: "one.h5", againstManifest: false)
        XCTAssertTrue(damaged.hasPrefix("verify one.h5: 2 shards, 720 samples, 3.00 MiB; schema;"), damaged)
        XCTAssertTrue(damaged.hasSuffix("verify: FAILED — 2 problems in 1 file"), damaged)
        XCTAssertTrue(damaged.contains("\n" + FileError("data/mixed/mixed-00001.h5", dataset: "labels", "row 3 sums to 1.2").description + "\n"))
    }

    func testTheJSONHasTheVerificationUnderVerify() throws {
        let text = try InspectJSON(summary: nil, verification: report(problems: [FileError("a.h5", dataset: "images", "bad chunk")])).render()
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        XCTAssertNil(json["summary"])
        XCTAssertEqual(json["verify"]?["ok"], .bool(false))
        XCTAssertEqual(json["verify"]?["samples"], .int(720))
        XCTAssertEqual(json["verify"]?["problems"], .array([.object(["file": .string("a.h5"), "dataset": .string("images"),
                                                                     "problem": .string("bad chunk")])]))
        XCTAssertEqual(json["verify"]?["warnings"], .array([.string("12 constant real images")]))
    }
}

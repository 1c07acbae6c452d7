import Foundation
import XCTest

/// docs/cli holds every command's `--help` as csm prints it 100 columns wide (written by
/// tools/docs/cli_help.py, `make cli-help`). These files must match the built csm: one per
/// command, none for a command csm no longer has.
final class CLIHelpTests: XCTestCase {
    let folder = packageRoot().appendingPathComponent("docs/cli")
    let regenerate = "run `make cli-help` to regenerate docs/cli"

    func testSavedHelpMatchesEveryCommand() throws {
        let commands = try helpFiles()
        let saved = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasPrefix("csm") && $0.hasSuffix(".txt") })
        XCTAssertGreaterThan(commands.count, 1)
        for name in saved.subtracting(commands.keys).sorted() {
            XCTFail("docs/cli/\(name) names no csm command: \(regenerate)")
        }
        for (name, arguments) in commands.sorted(by: { $0.key < $1.key }) {
            let command = (["csm"] + arguments + ["--help"]).joined(separator: " ")
            guard saved.contains(name) else {
                XCTFail("docs/cli/\(name) (`\(command)`) is missing: \(regenerate)")
                continue
            }
            // COLUMNS fixes the width csm wraps its help to (else the terminal's, or 80).
            let result = try runCSM(arguments + ["--help"], environment: ["COLUMNS": "100"])
            XCTAssertEqual(result.status, 0, result.err)
            let expected = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            XCTAssertTrue(result.out == expected,
                          "docs/cli/\(name) differs from `COLUMNS=100 \(command)`: \(regenerate)")
        }
    }
}

/// File name → arguments of every command, from `csm --experimental-dump-help` (the command
/// tree as ArgumentParser describes it), named as tools/docs/cli_help.py names them:
/// csm.txt, csm-generate.txt, csm-attribute-index.txt, …
func helpFiles() throws -> [String: [String]] {
    let result = try runCSM(["--experimental-dump-help"])
    XCTAssertEqual(result.status, 0, result.err)
    let tree = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
    var files: [String: [String]] = [:]
    func walk(_ command: [String: Any], _ arguments: [String]) {
        files[(["csm"] + arguments).joined(separator: "-") + ".txt"] = arguments
        for sub in command["subcommands"] as? [[String: Any]] ?? [] {
            guard let name = sub["commandName"] as? String, name != "help" else { continue }
            walk(sub, arguments + [name])
        }
    }
    walk(try XCTUnwrap(tree["command"] as? [String: Any]), [])
    return files
}

import ArgumentParser
import Foundation
import XCTest
import csm

/// Every command's help ends with examples (docs/cli holds them as csm prints them, which
/// CLIHelpTests keeps equal to the binary). Each example must name options the command has,
/// with values it accepts — they are parsed and validated as the command line would be — and
/// the examples that need no dataset (`csm sample`'s) are run, in order, in an empty folder.
final class HelpExamplesTests: XCTestCase {
    /// File name → the example command lines of that help file, continuation lines joined
    /// and comments dropped.
    func examples() throws -> [String: [String]] {
        let folder = packageRoot().appendingPathComponent("docs/cli")
        var result: [String: [String]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".txt") {
            let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            var lines: [String] = []
            var inExamples = false, pending = ""
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line == "Examples:" {
                    inExamples = true
                    continue
                }
                guard inExamples else { continue }
                guard line.hasPrefix("  ") else {
                    inExamples = false
                    continue
                }
                var command = line.trimmingCharacters(in: .whitespaces)
                if let comment = command.range(of: "  #") { command = String(command[..<comment.lowerBound]) }
                if command.hasSuffix("\\") {
                    pending += command.dropLast() + " "
                    continue
                }
                lines.append((pending + command).trimmingCharacters(in: .whitespaces))
                pending = ""
            }
            result[name] = lines
        }
        return result
    }

    /// Shell words of `line`: split at spaces outside single or double quotes, quotes removed.
    func words(_ line: String) -> [String] {
        var words: [String] = [], current = "", quote: Character? = nil, started = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                started = true
            } else if character == " " {
                if started || !current.isEmpty { words.append(current) }
                current = ""
                started = false
            } else {
                current.append(character)
            }
        }
        if started || !current.isEmpty { words.append(current) }
        return words
    }

    func testEveryCommandHasAnExampleOfItself() throws {
        let examples = try examples()
        XCTAssertGreaterThan(examples.count, 10)
        let commands = try helpFiles()
        for (name, lines) in examples.sorted(by: { $0.key < $1.key }) {
            let command = (["csm"] + (commands[name] ?? [])).joined(separator: " ")
            let own = lines.filter { $0 == command || $0.hasPrefix(command + " ") }
            XCTAssertFalse(own.isEmpty, "docs/cli/\(name): no example of `\(command)` under Examples:")
        }
    }

    /// Each `csm …` example parses and validates; the other lines (`echo … > names.json`) run
    /// first in a scratch folder, the working directory while parsing, so that files they
    /// write exist.
    func testEveryExampleParses() throws {
        let folder = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        var parsed = 0
        for (name, lines) in try examples().sorted(by: { $0.key < $1.key }) {
            for line in lines {
                let arguments = words(line)
                if arguments.first == "echo" {
                    let shell = Process()
                    shell.executableURL = URL(fileURLWithPath: "/bin/sh")
                    shell.arguments = ["-c", line]
                    shell.currentDirectoryURL = URL(fileURLWithPath: folder)
                    try shell.run()
                    shell.waitUntilExit()
                    continue
                }
                guard arguments.first == "csm" else { continue }
                do {
                    _ = try CSM.parseAsRoot(Array(arguments.dropFirst()))
                    parsed += 1
                } catch {
                    XCTFail("docs/cli/\(name): `\(line)` does not parse: \(CSM.message(for: error))")
                }
            }
        }
        XCTAssertGreaterThan(parsed, 40)
    }

    func testSampleExamplesRun() throws {
        let folder = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let lines = try XCTUnwrap(try examples()["csm-sample.txt"])
        XCTAssertGreaterThanOrEqual(lines.count, 5)
        for line in lines {
            let result = try runCSM(Array(words(line).dropFirst()), directory: folder)
            XCTAssertEqual(result.status, 0, "`\(line)`: \(result.err)")
        }
        for written in ["out", "mix.png", "traj.png", "z.safetensors", "x.safetensors", "denoised.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + written), written)
        }
    }
}

import CSMShards
import Foundation

extension VerificationReport {
    /// The verification as `csm inspect --verify` prints it: what was checked, each problem,
    /// note and warning on its own line, and the verdict. `againstManifest` says whether the
    /// set's shards were checked against a manifest (SHA-256 and counts).
    public func text(path: String, againstManifest: Bool) -> String {
        var lines = ["verify \(path): \(shards) shard\(shards == 1 ? "" : "s"), \(samples) samples, \(InspectText.bytes(bytes))"
                     + (againstManifest ? "; SHA-256 and counts against the manifest" : "")
                     + "; schema; every chunk through Fletcher-32; values"]
        lines += problems.map(\.description)
        lines += notes.map { "note: \($0)" }
        lines += warnings.map { "warning: \($0)" }
        if isClean {
            lines.append("verify: OK")
        } else {
            let files = Set(problems.map(\.path)).count
            lines.append("verify: FAILED — \(problems.count) problem\(problems.count == 1 ? "" : "s") in \(files) file\(files == 1 ? "" : "s")")
        }
        return lines.joined(separator: "\n") + (isClean ? "\n" : "")
    }
}

/// `csm inspect --json`: the summary (absent for a damaged set) and the verification (with
/// --verify), as indented JSON with sorted snake_case keys.
public struct InspectJSON: Encodable {
    struct Problem: Encodable {
        let file: String
        let dataset: String?
        let problem: String
    }

    struct Verification: Encodable {
        let ok: Bool
        let shards: Int
        let samples: Int
        let bytes: Int
        let problems: [Problem]
        let notes: [String]
        let warnings: [String]
    }

    let summary: DatasetSummary?
    let verify: Verification?

    public init(summary: DatasetSummary?, verification report: VerificationReport?) {
        self.summary = summary
        verify = report.map {
            Verification(ok: $0.isClean, shards: $0.shards, samples: $0.samples, bytes: $0.bytes,
                         problems: $0.problems.map { Problem(file: $0.path, dataset: $0.dataset, problem: $0.problem) },
                         notes: $0.notes, warnings: $0.warnings)
        }
    }

    /// The JSON text.
    public func render() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

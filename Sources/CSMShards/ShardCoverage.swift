import CSMFormats
import Foundation

/// Whether resolved shard paths hold whole runs. Manifests with the same configuration are
/// one run; when that configuration gives the run's shard count (`num_shards`, recorded by
/// `csm generate`), the shard indices that none of them lists are missing. Shards found
/// without a manifest (a directory of `.h5` files, one shard file) are not judged: nothing
/// says how many the run had.
public struct ShardCoverage: Sendable {
    /// One run with missing shards.
    public struct Gap: Sendable, Equatable {
        /// The run's manifests among the resolved paths.
        public let manifests: [String]
        /// Shards the run has in all.
        public let expected: Int
        /// Shard indices none of the manifests lists, ascending.
        public let missing: [Int]

        /// "lacks shard 1 of 3" / "lacks shards 0–2, 5 of 8".
        public var lacking: String { Manifest.describeMissing(missing, of: expected) }
    }

    /// The incomplete runs, in the order their first manifest was given.
    public let gaps: [Gap]

    /// True when every judged run is whole.
    public var isComplete: Bool { gaps.isEmpty }

    public init(_ resolved: [ShardPaths]) {
        var runs: [(config: JSONValue, manifests: [String], expected: Int?, present: Set<Int>)] = []
        for paths in resolved {
            guard let manifest = paths.manifest else { continue }
            let where_ = paths.manifestPath ?? paths.path
            let indices = manifest.shards.map(\.shardIndex)
            if let run = runs.firstIndex(where: { $0.config == manifest.config }) {
                runs[run].manifests.append(where_)
                runs[run].present.formUnion(indices)
            } else {
                runs.append((manifest.config, [where_], manifest.expectedShardCount, Set(indices)))
            }
        }
        gaps = runs.compactMap { run in
            let missing = Manifest.missing(expected: run.expected, present: run.present)
            guard let expected = run.expected, !missing.isEmpty else { return nil }
            return Gap(manifests: run.manifests, expected: expected, missing: missing)
        }
    }

    /// Throws a `FileError` naming the first incomplete run's manifest and the shards it
    /// lacks; `remedy` ends the message (how to read it anyway).
    public func requireComplete(remedy: String) throws {
        guard let gap = gaps.first else { return }
        throw FileError(gap.manifests[0], "incomplete dataset: \(gap.lacking) (run the workers that write them and csm merge again; \(remedy))")
    }
}

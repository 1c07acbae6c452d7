import CSMShards
import Foundation

/// What a generate run made, for its closing screen: samples, consistency, mean λ̂ per
/// λ_gen, and how many trajectory endpoints the classifier puts in their own class.
public struct GenerationSummary {
    public let lambdas: Int
    public private(set) var samples = 0
    public private(set) var consistent = 0
    private var projectionSums: [Double]
    private var projectionCounts: [Int]
    /// λ = 0 and λ = 1 samples, and those the classifier puts in the class the network was given.
    public private(set) var endpoints = 0
    public private(set) var endpointsRight = 0

    public init(lambdas: Int) {
        self.lambdas = lambdas
        projectionSums = [Double](repeating: 0, count: lambdas)
        projectionCounts = [Int](repeating: 0, count: lambdas)
    }

    /// Counts one shard's samples.
    public mutating func add(_ result: ShardResult) {
        let s = result.samples
        for i in 0..<s.count {
            samples += 1
            consistent += Int(s.consistent[i])
            let step = Int((Double(s.lambdaGen[i]) * Double(lambdas - 1)).rounded())
            projectionSums[step] += Double(s.lambdaProj[i])
            projectionCounts[step] += 1
            if step == 0 || step == lambdas - 1 {
                endpoints += 1
                // The endpoint is right when the classifier's top-1 class is the one the network was given.
                let intended = step == lambdas - 1 ? s.classA[i] : s.classB[i]
                if result.topClasses[i] == Int(intended) { endpointsRight += 1 }
            }
        }
    }

    /// The closing screen's lines.
    public func report(directory: String, shards: Int, skipped: Int, seconds: Double, manifest: Manifest) -> String {
        var lines = ["", "wrote \(shards) shards (\(samples) samples) to \(directory) in \(String(format: "%.1f", seconds)) s"
                     + (seconds > 0 && samples > 0 ? String(format: " — %.2f images/s", Double(samples) / seconds) : "")]
        if skipped > 0 { lines.append("skipped \(skipped) shards already finished") }
        lines.append("manifest: \(manifest.shards.count) shards, \(manifest.totalCount) samples")
        if samples > 0 {
            lines.append(String(format: "consistent samples: %.1f%%; λ=0 and λ=1 samples classified as their class: %.1f%%",
                                100 * Double(consistent) / Double(samples), 100 * Double(endpointsRight) / Double(max(1, endpoints))))
            let means = (0..<lambdas).map { projectionCounts[$0] > 0 ? projectionSums[$0] / Double(projectionCounts[$0]) : .nan }
            lines.append("λ_gen: " + (0..<lambdas).map { String(format: "%5.2f", Double($0) / Double(lambdas - 1)) }.joined(separator: " "))
            lines.append("mean λ̂: " + means.map { String(format: "%5.2f", $0) }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}

extension GenerationSummary {
    /// A warning when fewer than half of the λ = 0 and λ = 1 samples are classified as the
    /// class the network was given: the diffusion model and the classifier (or the sampler
    /// settings) probably do not match, and the soft labels mean little. Nil otherwise.
    public var mismatchWarning: String? {
        guard endpoints > 0, 2 * endpointsRight < endpoints else { return nil }
        return String(format: "only %d of %d λ = 0 and λ = 1 samples (%.1f%%) are classified as their own class; the diffusion "
                      + "model and the classifier probably do not match (or the sampler takes too few steps)",
                      endpointsRight, endpoints, 100 * Double(endpointsRight) / Double(endpoints))
    }
}

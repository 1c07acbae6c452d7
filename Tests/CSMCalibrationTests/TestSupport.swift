import CSMFormats
import CSMTestSupport
import Foundation
import XCTest

/// Path of a file under Tests/Fixtures.
func fixturePath(_ relative: String, file: StaticString = #filePath) -> String {
    URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// Calibration metrics written the slow, obvious way (as numpy code would: masks per bin),
/// to check the single-pass parallel implementation against.
struct ReferenceMetrics {
    var accuracy = 0.0, nll = 0.0, brier = 0.0, ece = 0.0, mce = 0.0, adaece = 0.0, cece = 0.0

    init(logits: [Double], classes k: Int, labels: [Int], bins b: Int, temperature: Double = 1) {
        let n = labels.count
        var probabilities: [[Double]] = []
        for i in 0..<n {
            let row = logits[(i * k)..<((i + 1) * k)].map { $0 / temperature }
            let top = row.max()!
            let exps = row.map { exp($0 - top) }
            let sum = exps.reduce(0, +)
            probabilities.append(exps.map { $0 / sum })
            nll += -(row[labels[i]] - top - log(sum))
        }
        nll /= Double(n)
        var confidences: [Double] = [], correct: [Double] = []
        for i in 0..<n {
            let p = probabilities[i]
            let prediction = p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) }!
            confidences.append(p[prediction])
            correct.append(prediction == labels[i] ? 1 : 0)
            brier += p.indices.reduce(0.0) { $0 + pow(p[$1] - ($1 == labels[i] ? 1 : 0), 2) }
        }
        accuracy = correct.reduce(0, +) / Double(n)
        brier /= Double(n)
        let edges = (0...b).map { Double($0) / Double(b) }
        (ece, mce) = Self.binned(confidences, correct, edges)
        // Equal-count edges: numpy.interp(linspace(0, n, b + 1), arange(n), sorted).
        let sorted = confidences.sorted()
        let adaptiveEdges: [Double] = (0...b).map { j in
            let x = Double(j) * Double(n) / Double(b)
            let i = Int(x)
            if i >= n - 1 { return sorted[n - 1] }
            return sorted[i] + (sorted[i + 1] - sorted[i]) * (x - Double(i))
        }
        adaece = Self.binned(confidences, correct, adaptiveEdges).ece
        for c in 0..<k {
            let pc = probabilities.map { $0[c] }
            let hits = labels.map { $0 == c ? 1.0 : 0.0 }
            cece += Self.binned(pc, hits, edges).ece / Double(k)
        }
    }

    /// ECE and MCE over bins (edges[j], edges[j+1]]; the first bin also takes c ≤ edges[0].
    static func binned(_ confidences: [Double], _ outcomes: [Double], _ edges: [Double]) -> (ece: Double, mce: Double) {
        var ece = 0.0, mce = 0.0
        for j in 0..<(edges.count - 1) {
            let members = confidences.indices.filter {
                (confidences[$0] > edges[j] || (j == 0 && confidences[$0] <= edges[0])) && confidences[$0] <= edges[j + 1]
            }
            guard !members.isEmpty else { continue }
            let confidence = members.reduce(0.0) { $0 + confidences[$1] } / Double(members.count)
            let accuracy = members.reduce(0.0) { $0 + outcomes[$1] } / Double(members.count)
            ece += Double(members.count) / Double(confidences.count) * abs(confidence - accuracy)
            mce = max(mce, abs(confidence - accuracy))
        }
        return (ece, mce)
    }
}

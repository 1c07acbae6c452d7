import CSMShards
import Foundation

/// The summary as aligned text for a terminal, with block-character histograms.
public struct InspectText {
    public let summary: DatasetSummary

    public init(summary: DatasetSummary) { self.summary = summary }

    /// The report `csm inspect` prints.
    public func render() -> String {
        let s = summary
        var lines: [String] = []
        let source = s.source == .manifest ? "manifest" : s.source == .directory ? "directory without a manifest" : "one shard"
        lines.append("\(s.path): \(s.samples) samples in \(s.shards) shard\(s.shards == 1 ? "" : "s") (\(source))")
        if let expected = s.expectedShards, !s.missingShards.isEmpty {
            lines.append("  INCOMPLETE: \(Manifest.describeMissing(s.missingShards, of: expected)) (csm merge the missing parts)")
        }
        func row(_ label: String, _ value: String) { lines.append("  " + Self.left(label, 16) + value) }
        let shape = s.imageShape.map(String.init).joined(separator: "×")
        let shownNames = s.classNames.prefix(20).joined(separator: ", ") + (s.classNames.count > 20 ? ", …" : "")
        row("images", "\(shape) uint8")
        row("classes", "\(s.classNames.count): \(shownNames)")
        if s.mixedSamples > 0 {
            let sharpness = s.sharpness.map { Self.number($0) }.joined(separator: ", ")
            row("mixed", "\(s.mixedSamples) samples: \(s.pairs.count) pair\(s.pairs.count == 1 ? "" : "s"), \(s.groups) groups, "
                + "\(s.levels.count) λ levels" + (sharpness.isEmpty ? "" : "; sharpness \(sharpness)"))
        }
        if s.realSamples > 0 {
            let counts = s.realClassCounts.filter { $0 > 0 }
            let low = counts.min() ?? 0, high = counts.max() ?? 0
            let range = counts.isEmpty ? "" : low == high ? ", \(low) per class" : ", \(low)–\(high) per class"
            row("real", "\(s.realSamples) samples of \(counts.count) classes\(range)")
        }
        if let rate = s.consistencyRate {
            row("consistent", Self.percent(rate) + " (\(s.consistent) of \(s.mixedSamples) mixed samples)")
        }
        if let mean = s.labelEntropy.mean, let max = s.labelEntropy.max {
            row("label entropy", String(format: "mean %.2f bits, max %.2f (a 50/50 label: 1 bit)", mean, max))
        }
        let perSample = s.samples > 0 ? ", \(Self.bytes(s.bytesOnDisk / s.samples)) per sample" : ""
        row("on disk", Self.bytes(s.bytesOnDisk) + perSample + "; \(Self.bytes(s.rawBytes)) uncompressed")
        if s.createdBy.count == 1 { row("written by", s.createdBy[0]) }

        guard s.mixedSamples > 0 else { return lines.joined(separator: "\n") }
        lines.append("")
        lines.append(levelBars(s))
        var note: [String] = []
        if let mean = s.lambdaProjStatistics.mean, let sd = s.lambdaProjStatistics.standardDeviation,
           let low = s.lambdaProjStatistics.min, let high = s.lambdaProjStatistics.max {
            note.append(String(format: "mean %.2f, sd %.2f, range %.2f … %.2f", mean, sd, low, high))
        }
        if s.lambdaProj.below + s.lambdaProj.above > 0 { note.append("\(s.lambdaProj.below) below −0.5, \(s.lambdaProj.above) above 1.5") }
        if s.lambdaProjMissing > 0 { note.append("\(s.lambdaProjMissing) without λ̂") }
        lines += histogram("λ̂", s.lambdaProj, marks: [(-0.5, "-0.5"), (0, "0"), (0.5, "0.5"), (1, "1"), (1.5, "1.5")], note: note.joined(separator: "; "))

        lines.append("")
        lines.append("  " + Self.left("λ_gen", 7) + Self.right("samples", 9) + Self.right("consistent", 12) + Self.right("mean λ̂", 9)
                     + Self.right("sd", 7) + Self.right("min", 7) + Self.right("max", 7))
        for level in s.levels {
            let p = level.lambdaProj
            lines.append("  " + Self.left(String(format: "%.2f", level.lambdaGen), 7) + Self.right("\(level.samples)", 9)
                         + Self.right(Self.percent(Double(level.consistent) / Double(max(1, level.samples))), 12)
                         + Self.right(Self.fixed(p.mean), 9) + Self.right(Self.fixed(p.standardDeviation), 7)
                         + Self.right(Self.fixed(p.min), 7) + Self.right(Self.fixed(p.max), 7))
        }

        lines.append("")
        let names = s.classNames
        func name(_ k: Int) -> String { k >= 0 && k < names.count ? names[k] : "\(k)" }
        let shown = s.pairs.prefix(Self.maximumPairRows)
        let labels = shown.map { "\(name($0.classA)) / \(name($0.classB))" }
        let width = max(24, (labels.map(\.count).max() ?? 0) + 2)
        lines.append("  " + Self.left("pair (λ on the first)", width) + Self.right("groups", 7) + Self.right("samples", 9)
                     + Self.right("consistent", 12) + Self.right("mean λ̂", 9) + "   mean λ̂ by λ_gen, 0 → 1")
        for (pair, label) in zip(shown, labels) {
            lines.append("  " + Self.left(label, width) + Self.right("\(pair.groups)", 7) + Self.right("\(pair.samples)", 9)
                         + Self.right(Self.percent(Double(pair.consistent) / Double(max(1, pair.samples))), 12)
                         + Self.right(Self.fixed(pair.lambdaProj.mean), 9) + "   " + Self.sparkline(pair.levels.map { $0.lambdaProj.mean }))
        }
        if s.pairs.count > shown.count { lines.append("  … and \(s.pairs.count - shown.count) more pairs (--json lists all)") }
        return lines.joined(separator: "\n")
    }

    /// Pairs listed in the table at most.
    static let maximumPairRows = 50

    /// Samples per λ level as block characters, with the levels' range.
    private func levelBars(_ s: DatasetSummary) -> String {
        let counts = s.levels.map(\.samples)
        let largest = counts.max() ?? 0
        let bars = String(counts.map { Self.blocks[min(7, max(0, Int((Double($0) / Double(max(1, largest)) * 8).rounded(.up)) - 1))] })
        let low = s.levels.first?.lambdaGen ?? 0, high = s.levels.last?.lambdaGen ?? 0
        let what = s.levelsBinned ? "\(s.levels.count) bins of 0.1" : "\(s.levels.count) level\(s.levels.count == 1 ? "" : "s")"
        let each = counts.min() == counts.max() ? "\(largest) samples each" : "\(counts.min() ?? 0)–\(largest) samples each"
        return "  " + Self.left("λ_gen", 7) + "▕" + bars + "▏  " + what + String(format: " from %.2f to %.2f, ", low, high) + each
    }

    /// A one-line histogram in block characters with an axis line under it.
    private func histogram(_ label: String, _ h: Histogram, marks: [(Double, String)], note: String = "") -> [String] {
        let largest = h.counts.max() ?? 0
        let bars = String(h.counts.map { count -> Character in
            guard count > 0, largest > 0 else { return " " }
            return Self.blocks[min(7, max(0, Int((Double(count) / Double(largest) * 8).rounded(.up)) - 1))]
        })
        var axis = [Character](repeating: " ", count: h.counts.count + 6)
        for (value, text) in marks {
            var column = Int(((value - h.lower) / h.binWidth).rounded())
            if column >= h.counts.count { column = h.counts.count - text.count }
            for (offset, character) in text.enumerated() where column + offset >= 0 && column + offset < axis.count {
                axis[column + offset] = character
            }
        }
        let indent = "  " + Self.left(label, 7)
        return [indent + "▕" + bars + "▏" + (note.isEmpty ? "" : "  " + note),
                String(repeating: " ", count: indent.count + 1) + String(String(axis).reversed().drop { $0 == " " }.reversed())]
    }

    static let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    /// Mean λ̂ per level as block characters, [0, 1] from ▁ to █ (values outside clamp).
    static func sparkline(_ values: [Double?]) -> String {
        String(values.map { value -> Character in
            guard let value, value.isFinite else { return "·" }
            return blocks[min(7, max(0, Int(value * 8)))]
        })
    }

    /// `text` padded with spaces on the right to `width` characters.
    static func left(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func right(_ text: String, _ width: Int) -> String {
        text.count >= width ? " " + text : String(repeating: " ", count: width - text.count) + text
    }

    static func fixed(_ value: Double?) -> String { value.map { String(format: "%.2f", $0) } ?? "–" }
    static func percent(_ value: Double) -> String { String(format: "%.1f%%", 100 * value) }
    static func number(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(format: "%g", value) }

    /// Bytes in binary units: "812 B", "84.5 KiB", "1.23 GiB".
    /// A byte count in B, KiB, MiB or GiB.
    public static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count), unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        guard unit > 0 else { return "\(count) B" }
        return String(format: value < 10 ? "%.2f" : value < 100 ? "%.1f" : "%.0f", value) + " " + units[unit]
    }
}

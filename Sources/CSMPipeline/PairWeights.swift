import CSMFormats
import Foundation

/// How much of a generation budget each class pair deserves, from where a classifier is
/// wrong: the `csm-pair-weights/1` file that `csm pairs` writes and `csm generate
/// --pair-weights` reads (docs/formats/pair-weights.md).
///
/// A pair's score is its confident confusion: over the labelled samples of class a that the
/// classifier calls b, and of b that it calls a, the sum of the classifier's probability for
/// the wrong class — how often the two are mistaken, and how confidently. The weights share
/// (1 − floor) in proportion to the scores and spread `floor` evenly over all pairs, so no
/// pair gets zero.
public struct PairWeights: Codable, Equatable, Sendable {
    public static let schema = "csm-pair-weights/1"

    /// One unordered class pair (a < b).
    public struct Entry: Codable, Equatable, Sendable {
        public var a: Int
        public var b: Int
        /// The pair's share of the budget; the weights of a file sum to 1.
        public var weight: Double
        /// Samples of a classified as b plus samples of b classified as a.
        public var errors: Int
        /// The classifier's probabilities of the wrong class, summed over those errors.
        public var confidentErrors: Double

        public init(a: Int, b: Int, weight: Double, errors: Int, confidentErrors: Double) {
            self.a = a
            self.b = b
            self.weight = weight
            self.errors = errors
            self.confidentErrors = confidentErrors
        }

        enum CodingKeys: String, CodingKey {
            case a, b, weight, errors
            case confidentErrors = "confident_errors"
        }
    }

    /// Where the confusion was measured.
    public struct Source: Codable, Equatable, Sendable {
        public var classifier: String
        public var classifierSHA256: String
        public var data: String
        public var samples: Int
        public var accuracy: Double

        public init(classifier: String, classifierSHA256: String, data: String, samples: Int, accuracy: Double) {
            self.classifier = classifier
            self.classifierSHA256 = classifierSHA256
            self.data = data
            self.samples = samples
            self.accuracy = accuracy
        }

        enum CodingKeys: String, CodingKey {
            case classifier, data, samples, accuracy
            case classifierSHA256 = "classifier_sha256"
        }
    }

    public var schema = Self.schema
    public var classNames: [String]
    public var floor: Double
    public var source: Source?
    /// Every unordered pair of the classes, a < b, in order.
    public var pairs: [Entry]

    enum CodingKeys: String, CodingKey {
        case schema, floor, source, pairs
        case classNames = "class_names"
    }

    /// Weights from a classifier's `probabilities` (n × K, rows summing to 1) on samples of
    /// classes `labels`, with `floor` ∈ [0, 1] of the budget spread evenly.
    public init(probabilities: [Double], labels: [Int], classNames: [String], floor: Double, source: Source?) throws {
        let k = classNames.count
        guard k >= 2 else { throw PlanError("pair weights need at least two classes") }
        guard floor.isFinite, floor >= 0, floor <= 1 else { throw PlanError("the floor must lie in [0, 1], got \(floor)") }
        guard probabilities.count == labels.count * k else {
            throw PlanError("\(probabilities.count) probabilities for \(labels.count) samples of \(k) classes")
        }
        let (errors, confident) = Self.confusion(probabilities: probabilities, labels: labels, classCount: k)
        var entries: [Entry] = []
        for a in 0..<k {
            for b in (a + 1)..<k {
                entries.append(Entry(a: a, b: b, weight: 0, errors: errors[a * k + b] + errors[b * k + a],
                                     confidentErrors: confident[a * k + b] + confident[b * k + a]))
            }
        }
        let total = entries.reduce(0) { $0 + $1.confidentErrors }
        let even = 1 / Double(entries.count)
        for i in entries.indices {
            entries[i].weight = total > 0 ? (1 - floor) * entries[i].confidentErrors / total + floor * even : even
        }
        self.classNames = classNames
        self.floor = floor
        self.source = source
        self.pairs = entries
    }

    /// The confusion of a classifier's `probabilities` (n × K) on samples of classes `labels`:
    /// `counts[y·K + ŷ]` samples of class y predicted as ŷ (the first largest probability), and
    /// `confident[y·K + ŷ]` the probabilities of ŷ summed over those samples.
    public static func confusion(probabilities: [Double], labels: [Int], classCount k: Int) -> (counts: [Int], confident: [Double]) {
        var counts = [Int](repeating: 0, count: k * k), confident = [Double](repeating: 0, count: k * k)
        for (i, label) in labels.enumerated() where (0..<k).contains(label) {
            let row = probabilities[(i * k)..<((i + 1) * k)]
            let predicted = row.indices.max { row[$0] < row[$1] }! - i * k
            counts[label * k + predicted] += 1
            confident[label * k + predicted] += row[i * k + predicted]
        }
        return (counts, confident)
    }

    /// The `top` heaviest pairs as `csm pairs` prints them: a header, then per pair its
    /// classes, errors both ways, their summed confidence and its weight.
    public func table(top: Int) -> String {
        func column(_ text: String) -> String { text.padding(toLength: 32, withPad: " ", startingAt: 0) }
        let rows = pairs.sorted { $0.weight > $1.weight }.prefix(top).map { entry in
            column("\(classNames[entry.a]) ↔ \(classNames[entry.b])")
                + String(format: "  %6d  %9.2f  %6.4f", entry.errors, entry.confidentErrors, entry.weight)
        }
        return ([column("pair") + "  errors  confident  weight"] + rows).joined(separator: "\n")
    }

    /// Reads and checks a weights file: its schema, every pair's classes (in range, a ≠ b,
    /// each pair once) and weights (finite, non-negative, not all zero).
    public static func read(from path: String) throws -> PairWeights {
        guard let data = FileManager.default.contents(atPath: path) else { throw FileError(path, "cannot be read (no such file?)") }
        let weights: PairWeights
        do {
            weights = try JSONDecoder().decode(PairWeights.self, from: data)
        } catch {
            throw FileError(path, "not a \(schema) file: \(Self.describe(error))")
        }
        guard weights.schema == schema else { throw FileError(path, "is '\(weights.schema)', expected \(schema)") }
        let k = weights.classNames.count
        var seen = Set<[Int]>()
        for entry in weights.pairs {
            guard (0..<k).contains(entry.a), (0..<k).contains(entry.b), entry.a != entry.b else {
                throw FileError(path, "pair \(entry.a):\(entry.b) names a class outside 0..<\(k) or one class twice")
            }
            guard seen.insert([min(entry.a, entry.b), max(entry.a, entry.b)]).inserted else {
                throw FileError(path, "pair \(entry.a):\(entry.b) is listed twice")
            }
            guard entry.weight.isFinite, entry.weight >= 0 else {
                throw FileError(path, "pair \(entry.a):\(entry.b) has weight \(entry.weight); weights must be finite and non-negative")
            }
        }
        guard weights.pairs.contains(where: { $0.weight > 0 }) else { throw FileError(path, "every weight is zero") }
        return weights
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case DecodingError.dataCorrupted: return "not valid JSON"
        default: return "\(error)"
        }
    }

    /// Writes the file (sorted keys, atomically).
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(self) + Data("\n".utf8), to: path)
    }

    /// The weight of pair (a, b) in either order, nil when the file does not list it.
    public func weight(of pair: ClassPair) -> Double? {
        pairs.first { ($0.a == pair.a && $0.b == pair.b) || ($0.a == pair.b && $0.b == pair.a) }?.weight
    }

    /// Trajectories per pair of `pairs` (in their order) for a budget of `total`: one each,
    /// then the rest in proportion to the weights, rounded by largest remainder (ties to the
    /// earlier pair), so the counts sum to `total` and depend on nothing else.
    /// `classNames` must be the file's; `path` names the file in errors.
    public func allocation(pairs: [ClassPair], total: Int, classNames: [String], path: String) throws -> [Int] {
        guard classNames == self.classNames else {
            throw FileError(path, "weights for the classes \(self.classNames), but the model has \(classNames)")
        }
        guard total >= pairs.count else {
            throw PlanError("a budget of \(total) trajectories cannot give each of the \(pairs.count) pairs one")
        }
        let weights = try pairs.map { pair -> Double in
            guard let weight = weight(of: pair) else {
                throw FileError(path, "lists no weight for the pair \(classNames[pair.a]):\(classNames[pair.b])")
            }
            return weight
        }
        let sum = weights.reduce(0, +)
        let rest = total - pairs.count
        let quotas = weights.map { sum > 0 ? Double(rest) * $0 / sum : Double(rest) / Double(pairs.count) }
        var counts = quotas.map { 1 + Int($0.rounded(.down)) }
        let order = quotas.indices.sorted { i, j in
            let (ri, rj) = (quotas[i] - quotas[i].rounded(.down), quotas[j] - quotas[j].rounded(.down))
            return ri != rj ? ri > rj : i < j
        }
        var left = total - counts.reduce(0, +)
        for i in order where left > 0 {
            counts[i] += 1
            left -= 1
        }
        return counts
    }
}

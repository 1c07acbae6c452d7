import CSMFormats
import CSMShards
import Foundation

/// The samples of one group (a trajectory), in increasing λ_gen, with their images.
public struct Trajectory: Sendable {
    public let group: Int64
    /// The pair; λ_gen is the share of class a.
    public let classA: Int
    public let classB: Int
    public let lambdaGen: [Float]
    public let lambdaProj: [Float]
    public let consistent: [Bool]
    /// One uint8 [H, W, C] image per sample.
    public let images: [[UInt8]]
    public let height: Int
    public let width: Int
    public let channels: Int
}

/// λ̂ against λ_gen for the mixed samples of one class pair.
public struct PairProjections: Sendable {
    public let classA: Int
    public let classB: Int
    public internal(set) var lambdaGen: [Float]
    public internal(set) var lambdaProj: [Float]
    public internal(set) var consistent: [Bool]

    /// The samples of pair (`classA`, `classB`), one entry each in the three lists.
    public init(classA: Int, classB: Int, lambdaGen: [Float], lambdaProj: [Float], consistent: [Bool]) {
        precondition(lambdaGen.count == lambdaProj.count && lambdaGen.count == consistent.count, "PairProjections: lists differ in length")
        self.classA = classA
        self.classB = classB
        self.lambdaGen = lambdaGen
        self.lambdaProj = lambdaProj
        self.consistent = consistent
    }
}

/// The first real samples of one class.
public struct ClassExamples: Sendable {
    public let classIndex: Int
    /// uint8 [H, W, C] images.
    public let images: [[UInt8]]
    public let height: Int
    public let width: Int
    public let channels: Int
}

extension ShardCollection {
    /// Whether sample (a, b) belongs to one of `pairs` (in either order); true without a filter.
    private static func matches(_ a: Int32, _ b: Int32, _ pairs: [(Int, Int)]?) -> Bool {
        guard let pairs else { return true }
        return pairs.contains { (Int(a) == $0.0 && Int(b) == $0.1) || (Int(a) == $0.1 && Int(b) == $0.0) }
    }

    /// The `limit` groups with the smallest ids (of `pairs` only, in either order, when
    /// given), each with its samples in increasing λ_gen and their images. Reads the small
    /// columns of every shard, then only the images shown. A group id found in several
    /// shards (directories of different runs) is taken from the first.
    public func trajectories(limit: Int, pairs: [(Int, Int)]? = nil) throws -> [Trajectory] {
        struct Row { let shard: Int, row: Int, a: Int32, b: Int32, gen: Float, proj: Float, consistent: Bool }
        guard limit > 0 else { return [] }
        var rows: [Int64: [Row]] = [:]
        var shardOfGroup: [Int64: Int] = [:]   // a group is taken from the first shard that holds it
        var cutoff = Int64.max       // groups above it can no longer make the first `limit`
        var shape = (0, 0, 0)
        for (shardIndex, member) in members.enumerated() {
            let reader = try ShardReader(path: member.path)
            shape = (reader.height, reader.width, reader.channels)
            guard reader.metadata.kind == .mixed else { continue }
            let group = try reader.group(), classA = try reader.classA(), classB = try reader.classB()
            let gen = try reader.lambdaGen(), proj = try reader.lambdaProj(), flags = try reader.consistent()
            for i in 0..<reader.count where group[i] >= 0 && group[i] <= cutoff && Self.matches(classA[i], classB[i], pairs) {
                guard shardOfGroup[group[i], default: shardIndex] == shardIndex else { continue }
                shardOfGroup[group[i]] = shardIndex
                rows[group[i], default: []].append(Row(shard: shardIndex, row: i, a: classA[i], b: classB[i], gen: gen[i],
                                                       proj: proj[i], consistent: flags[i] != 0))
            }
            if rows.count > limit {
                let kept = rows.keys.sorted().prefix(limit)
                cutoff = kept.last ?? cutoff
                rows = rows.filter { $0.key <= cutoff }
            }
        }
        let groups = rows.keys.sorted().prefix(limit)
        // Read the images shown, shard by shard, in runs of consecutive rows.
        var wanted: [Int: Set<Int>] = [:]
        for id in groups { for row in rows[id] ?? [] { wanted[row.shard, default: []].insert(row.row) } }
        var images: [Int: [Int: [UInt8]]] = [:]
        for (shard, set) in wanted {
            let reader = try ShardReader(path: members[shard].path)
            let size = reader.height * reader.width * reader.channels
            for run in Self.runs(set.sorted()) {
                let pixels = try reader.images(rows: run)
                for (offset, row) in run.enumerated() {
                    images[shard, default: [:]][row] = Array(pixels[(offset * size)..<((offset + 1) * size)])
                }
            }
        }
        return groups.map { id in
            let samples = (rows[id] ?? []).sorted { $0.gen < $1.gen }
            return Trajectory(group: id, classA: Int(samples.first?.a ?? 0), classB: Int(samples.first?.b ?? 0),
                              lambdaGen: samples.map(\.gen), lambdaProj: samples.map(\.proj), consistent: samples.map(\.consistent),
                              images: samples.map { images[$0.shard]?[$0.row] ?? [] },
                              height: shape.0, width: shape.1, channels: shape.2)
        }
    }

    /// λ_gen, λ̂ and the consistency flag of every mixed sample with a λ̂, per class pair
    /// (of `pairs` only, in either order, when given), pairs in the order they first appear.
    public func projections(pairs: [(Int, Int)]? = nil) throws -> [PairProjections] {
        var order: [[Int32]] = []
        var result: [[Int32]: PairProjections] = [:]
        for member in members {
            let reader = try ShardReader(path: member.path)
            guard reader.metadata.kind == .mixed else { continue }
            let classA = try reader.classA(), classB = try reader.classB()
            let gen = try reader.lambdaGen(), proj = try reader.lambdaProj(), flags = try reader.consistent()
            for i in 0..<reader.count where proj[i].isFinite && Self.matches(classA[i], classB[i], pairs) {
                let key = [classA[i], classB[i]]
                if result[key] == nil {
                    order.append(key)
                    result[key] = PairProjections(classA: Int(classA[i]), classB: Int(classB[i]), lambdaGen: [], lambdaProj: [], consistent: [])
                }
                result[key]?.lambdaGen.append(gen[i])
                result[key]?.lambdaProj.append(proj[i])
                result[key]?.consistent.append(flags[i] != 0)
            }
        }
        return order.compactMap { result[$0] }
    }

    /// Up to `perClass` real samples of each of the first `classLimit` classes, in file order.
    public func examples(perClass: Int, classLimit: Int) throws -> [ClassExamples] {
        var found: [Int: [[UInt8]]] = [:]
        var shape = (0, 0, 0)
        for member in members {
            let reader = try ShardReader(path: member.path)
            guard reader.metadata.kind == .real else { continue }
            shape = (reader.height, reader.width, reader.channels)
            let classes = min(classLimit, reader.numClasses)
            let size = reader.height * reader.width * reader.channels
            let classA = try reader.classA()
            var rows: [Int] = []
            var taken = (0..<classes).map { found[$0]?.count ?? 0 }
            for (i, a) in classA.enumerated() where a >= 0 && Int(a) < classes && taken[Int(a)] < perClass {
                taken[Int(a)] += 1
                rows.append(i)
            }
            for run in Self.runs(rows) {
                let pixels = try reader.images(rows: run)
                for (offset, row) in run.enumerated() {
                    found[Int(classA[row]), default: []].append(Array(pixels[(offset * size)..<((offset + 1) * size)]))
                }
            }
            if (0..<classes).allSatisfy({ (found[$0]?.count ?? 0) >= perClass }) { break }
        }
        return found.keys.sorted().map {
            ClassExamples(classIndex: $0, images: found[$0] ?? [], height: shape.0, width: shape.1, channels: shape.2)
        }
    }

    /// Sorted row numbers as ranges of consecutive rows.
    static func runs(_ rows: [Int]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        for row in rows {
            if let last = result.last, last.upperBound == row {
                result[result.count - 1] = last.lowerBound..<(row + 1)
            } else {
                result.append(row..<(row + 1))
            }
        }
        return result
    }
}

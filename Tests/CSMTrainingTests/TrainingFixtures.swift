import CSMShards
import Foundation

/// Small shard sets written by the tests: real images of 3 (or more) classes that a linear
/// classifier separates (class c brightens row band c, plus noise), and mixed trajectories
/// between class pairs.
struct TrainingFixtures {
    let directory: String
    let height = 6, width = 6, channels = 1

    init() throws {
        directory = NSTemporaryDirectory() + "csm-training-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    static func names(_ k: Int) -> [String] { (0..<k).map { "class\($0)" } }

    private func emptySamples(_ k: Int) -> ShardSamples {
        ShardSamples(height: height, width: width, channels: channels, numClasses: k, images: [], labels: [], classA: [], classB: [],
                     lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
    }

    /// Pixels of a sample of class weights `weights` (a soft mix for mixed samples).
    private func image(_ weights: [Double], noise: Int) -> [UInt8] {
        var random = UInt64(truncatingIfNeeded: noise) &* 0x9E37_79B9_7F4A_7C15 | 1
        let bands = weights.count
        return (0..<(height * width * channels)).map { p in
            random ^= random << 13; random ^= random >> 7; random ^= random << 17
            let row = p / (width * channels)
            let band = row * bands / height
            let level = 40 + 170 * weights[band] + Double(random % 40)
            return UInt8(max(0, min(255, level)))
        }
    }

    /// A real shard of `count` samples, class i % k.
    @discardableResult
    func writeReal(_ name: String = "real.h5", count: Int, classes k: Int = 3, seed: Int = 0) throws -> String {
        let path = directory + "/" + name
        let samples = ShardSamples.real(
            height: height, width: width, channels: channels, numClasses: k,
            images: (0..<count).flatMap { i in image((0..<k).map { $0 == i % k ? 1 : 0 }, noise: seed * 100_003 + i) },
            classes: (0..<count).map { Int32($0 % k) })
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .real, classNames: Self.names(k), sharpness: 0, createdBy: "test"),
                                to: path)
        return path
    }

    /// A mixed shard: `groups` trajectories of 4 samples over `pairs` in turn; member i of
    /// trajectory g has the consistency flag `consistent(g, i)`.
    @discardableResult
    func writeMixed(_ name: String = "mixed.h5", groups: Int, classes k: Int = 3,
                    pairs: [(Int, Int)] = [(0, 1), (1, 2), (2, 0)], consistent: (Int, Int) -> UInt8 = { _, _ in 1 }) throws -> String {
        let path = directory + "/" + name
        var samples = emptySamples(k)
        for g in 0..<groups {
            let (a, b) = pairs[g % pairs.count]
            for i in 0..<4 {
                let lambda = Float(i) / 3
                var label = [Float](repeating: 0, count: k)
                label[a] += lambda
                label[b] += 1 - lambda
                samples.images += image(label.map(Double.init), noise: 7_000_000 + g * 4 + i)
                samples.labels += label
                samples.classA.append(Int32(a))
                samples.classB.append(Int32(b))
                samples.lambdaGen.append(lambda)
                samples.lambdaProj.append(lambda)
                samples.probA.append(lambda)
                samples.probB.append(1 - lambda)
                samples.consistent.append(consistent(g, i))
                samples.group.append(Int64(g))
                samples.seed.append(Int64(g))
            }
        }
        try ShardWriter().write(samples, metadata: ShardMetadata(kind: .mixed, classNames: Self.names(k), sharpness: 10, createdBy: "test"),
                                to: path)
        return path
    }
}

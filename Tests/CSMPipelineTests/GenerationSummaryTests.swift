import CSMPipeline
import CSMShards
import XCTest

/// The closing screen of `csm generate` and its warning when the classifier puts most
/// trajectory endpoints outside their own class.
final class GenerationSummaryTests: XCTestCase {
    /// One trajectory of pair (a, b) with 4 λ levels whose samples the classifier calls `top`.
    func trajectory(a: Int32, b: Int32, top: [Int]) -> ShardResult {
        var s = ShardSamples(height: 1, width: 1, channels: 1, numClasses: 3, images: [], labels: [], classA: [], classB: [],
                             lambdaGen: [], lambdaProj: [], probA: [], probB: [], consistent: [], group: [], seed: [])
        for i in 0..<4 {
            let lambda = Float(i) / 3
            s.images.append(0)
            s.labels += [0, 0, 0]
            s.classA.append(a)
            s.classB.append(b)
            s.lambdaGen.append(lambda)
            s.lambdaProj.append(lambda)
            s.probA.append(lambda)
            s.probB.append(1 - lambda)
            s.consistent.append(1)
            s.group.append(0)
            s.seed.append(0)
        }
        return ShardResult(samples: s, topClasses: top)
    }

    func testWarnsWhenFewerThanHalfOfTheEndpointsLandInTheirClass() {
        // λ = 0 is class b, λ = 1 class a.
        var good = GenerationSummary(lambdas: 4)
        good.add(trajectory(a: 0, b: 1, top: [1, 1, 0, 0]))
        good.add(trajectory(a: 0, b: 2, top: [2, 2, 0, 1]))        // 1 of 2 endpoints wrong: 3 of 4 right
        XCTAssertEqual(good.endpoints, 4)
        XCTAssertEqual(good.endpointsRight, 3)
        XCTAssertNil(good.mismatchWarning)

        var half = GenerationSummary(lambdas: 4)
        half.add(trajectory(a: 0, b: 1, top: [1, 2, 2, 2]))         // 1 of 2: exactly half is no warning
        XCTAssertNil(half.mismatchWarning)

        var bad = GenerationSummary(lambdas: 4)
        bad.add(trajectory(a: 0, b: 1, top: [2, 2, 2, 2]))
        bad.add(trajectory(a: 0, b: 2, top: [2, 1, 1, 1]))
        XCTAssertEqual(bad.endpointsRight, 1)
        XCTAssertEqual(bad.mismatchWarning?.hasPrefix("only 1 of 4 λ = 0 and λ = 1 samples (25.0%) are classified as their own class"), true)
        XCTAssertNil(GenerationSummary(lambdas: 4).mismatchWarning)
    }
}

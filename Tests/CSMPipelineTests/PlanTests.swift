import CSMDiffusion
import CSMFormats
import CSMPipeline
import CSMShards
import XCTest

final class PlanTests: XCTestCase {
    let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    func testPairsParse() throws {
        XCTAssertEqual(try ClassPair.parse("all", classNames: names, classCount: 10).count, 45)
        XCTAssertEqual(try ClassPair.parse("7:9,Sneaker:sandal", classNames: names, classCount: 10), [ClassPair(7, 9), ClassPair(7, 5)])
        for bad in ["7", "7:7", "7:10", "7:9,9:7", "7:Shoe", "", "7:9,"] {
            XCTAssertThrowsError(try ClassPair.parse(bad, classNames: names, classCount: 10), bad)
        }
    }

    func testShardsCoverEveryGroupOnceWhateverTheSplit() throws {
        let plan = try GenerationPlan(pairs: ClassPair.all(classCount: 4), groupsPerPair: 3, lambdas: 8, seed: 1, shardSize: 40)
        XCTAssertEqual(plan.groupCount, 18)
        XCTAssertEqual(plan.groupsPerShard, 5)
        XCTAssertEqual(plan.shardCount, 4)
        for workers in 1...5 {
            var seen: [Int] = []
            for w in 0..<workers { for s in plan.shards(ofWorker: w, of: workers) { seen += Array(plan.groups(ofShard: s)) } }
            XCTAssertEqual(seen.sorted(), Array(0..<18))
        }
        XCTAssertEqual(plan.pair(ofGroup: 4), ClassPair(0, 2))
        XCTAssertThrowsError(try GenerationPlan(pairs: [ClassPair(0, 1)], groupsPerPair: 1, lambdas: 8, seed: 0, shardSize: 4))
    }

    func testLatentSeedsAndLambdas() throws {
        let plan = try GenerationPlan(pairs: [ClassPair(7, 9)], groupsPerPair: 2, lambdas: 8, seed: 5, shardSize: 64)
        XCTAssertNotEqual(plan.latentSeed(ofGroup: 0), plan.latentSeed(ofGroup: 1))
        XCTAssertEqual(plan.latentSeed(ofGroup: 1), try GenerationPlan(pairs: [ClassPair(7, 9)], groupsPerPair: 9, lambdas: 4, seed: 5, shardSize: 8).latentSeed(ofGroup: 1))
        XCTAssertEqual(plan.lambda(0), 0)
        XCTAssertEqual(plan.lambda(7), 1)
        let v = plan.classVector(ClassPair(7, 9), sample: 2, classCount: 10)
        XCTAssertEqual(v[7], 2.0 / 7, accuracy: 1e-7)
        XCTAssertEqual(v[9], 5.0 / 7, accuracy: 1e-7)
        XCTAssertEqual(v.reduce(0, +), 1, accuracy: 1e-6)
    }

    func testReannotation() {
        let r = Reannotation(prototypes: [[0, 0], [2, 0], [0, 4]], sharpness: 10, margin: 0.25)
        XCTAssertEqual(r.projection(features: [2, 0][...], a: 1, b: 0), 1, accuracy: 1e-12)
        XCTAssertEqual(r.projection(features: [0, 0][...], a: 1, b: 0), 0, accuracy: 1e-12)
        XCTAssertEqual(r.projection(features: [1, 7][...], a: 1, b: 0), 0.5, accuracy: 1e-12)
        XCTAssertEqual(r.projection(features: [3, 0][...], a: 1, b: 0), 1.5, accuracy: 1e-12)
        XCTAssertEqual(SoftLabel.calibratedRatio(projection: 0.5, sharpness: 10), 0.5, accuracy: 1e-12)
        XCTAssertEqual(SoftLabel.calibratedRatio(projection: 1, sharpness: 10), 1 / (1 + exp(-5)), accuracy: 1e-12)
        let good = r.annotate(features: [1.8, 0][...], logits: [0, 3, 1][...], a: 1, b: 0)
        XCTAssertTrue(good.consistent)
        XCTAssertEqual(good.projection, 0.9, accuracy: 1e-6)
        XCTAssertEqual(Double(good.probabilityA), exp(3) / (1 + exp(3) + exp(1)), accuracy: 1e-6)
        XCTAssertFalse(r.annotate(features: [1.8, 0][...], logits: [0, 1, 3][...], a: 1, b: 0).consistent)   // top-1 is class 2
        XCTAssertFalse(r.annotate(features: [3, 0][...], logits: [0, 3, 1][...], a: 1, b: 0).consistent)     // λ̂ = 1.5 > 1.25
    }
}

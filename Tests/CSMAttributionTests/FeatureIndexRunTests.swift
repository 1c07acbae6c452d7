import CSMAttribution
import XCTest

/// The chunk size `csm attribute index` uses when --batch is not given.
final class FeatureIndexRunTests: XCTestCase {
    func testDefaultChunkSizeKeepsTheGradientsWithinTwoGiB() {
        XCTAssertEqual(FeatureIndexRun.defaultChunkSize(parameterCount: 1_753_345), 256)  // the default model
        XCTAssertEqual(FeatureIndexRun.defaultChunkSize(parameterCount: 10_000_000), 53)  // 53 × 4·10⁷ bytes ≤ 2 GiB
        XCTAssertEqual(FeatureIndexRun.defaultChunkSize(parameterCount: 55_733_891), 16)  // the paper's network: the floor
        XCTAssertEqual(FeatureIndexRun.defaultChunkSize(parameterCount: 0), 256)
    }
}

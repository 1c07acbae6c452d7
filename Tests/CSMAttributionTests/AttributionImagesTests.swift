import CSMAttribution
import CSMFormats
import CSMModels
import CSMShards
import XCTest

/// Shard sets as DAS inputs: pixels in the network's range, class vectors as the network
/// was given them, indices counted across shards.
final class AttributionImagesTests: XCTestCase {
    func testClassVectorsPixelsAndIndicesAcrossShards() throws {
        let dir = NSTemporaryDirectory() + "csm-attribution-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let names = (0..<10).map { "c\($0)" }
        let side = 28 * 28
        let real = ShardSamples.real(height: 28, width: 28, channels: 1, numClasses: 10,
                                     images: (0..<(2 * side)).map { UInt8($0 % 256) }, classes: [3, 7])
        try ShardWriter().write(real, metadata: ShardMetadata(kind: .real, classNames: names, sharpness: .nan, createdBy: "test"),
                                to: dir + "/a-00000.h5")
        var mixed = ShardSamples.real(height: 28, width: 28, channels: 1, numClasses: 10,
                                      images: [UInt8](repeating: 255, count: side), classes: [7])
        mixed.classB = [9]
        mixed.lambdaGen = [0.25]
        mixed.labels = [Float](repeating: 0.1, count: 10)
        try ShardWriter().write(mixed, metadata: ShardMetadata(kind: .mixed, classNames: names, sharpness: 10, createdBy: "test"),
                                to: dir + "/b-00000.h5")

        let third = ShardSamples.real(height: 28, width: 28, channels: 1, numClasses: 10,
                                      images: [UInt8](repeating: 0, count: side), classes: [1])
        try ShardWriter().write(third, metadata: ShardMetadata(kind: .real, classNames: names, sharpness: .nan, createdBy: "test"),
                                to: dir + "/c-00000.h5")

        let network = try TrainableUNet(path: fixture("edm/ddpmpp-vp-28x1.safetensors"))
        let images = try AttributionImages(resolving: dir, for: network)
        XCTAssertEqual(images.count, 4)
        let batch = try images.batch(1..<3)
        XCTAssertEqual(batch.images.count, 2 * side)
        XCTAssertEqual(batch.images[0], Float(side % 256) / 127.5 - 1, accuracy: 1e-6)
        XCTAssertEqual(batch.images[side], 1, accuracy: 1e-6)
        var expected = [Float](repeating: 0, count: 20)
        expected[7] = 1                     // the real image: one-hot
        expected[10 + 7] = 0.25             // the mixed sample: λ on class a, 1 − λ on class b
        expected[10 + 9] = 0.75
        XCTAssertEqual(batch.classLabels, expected)
        // Rows past the end of earlier shards.
        let last = try images.batch(3..<4)
        XCTAssertEqual(last.images, [Float](repeating: -1, count: side))
        XCTAssertEqual(last.classLabels, (0..<10).map { $0 == 1 ? 1 : 0 })
        XCTAssertEqual(try images.caption(2), "c7 <- c9 λ=0.25")
        XCTAssertEqual(try images.pixels(2).pixels, [UInt8](repeating: 255, count: side))
    }
}

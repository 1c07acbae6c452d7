import CSMFormats
import CSMPictures
import Foundation
import XCTest

final class PNGWriterTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "csm-pictures-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func pattern(width: Int, height: Int, channels: Int) -> [UInt8] {
        (0..<(width * height * channels)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 / 7) }
    }

    func testRoundTripsEveryChannelCount() throws {
        for channels in 1...4 {
            let pixels = pattern(width: 13, height: 7, channels: channels)
            let image = try RasterImage(width: 13, height: 7, channels: channels, pixels: pixels)
            let path = folder + "/image\(channels).png"
            try image.writePNG(path: path)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            let decoded = try readPNG(path, channels: channels)
            XCTAssertEqual(decoded.width, 13)
            XCTAssertEqual(decoded.height, 7)
            XCTAssertEqual(decoded.pixels, pixels, "\(channels) channels")
        }
    }

    func testCanvasWritesRGBAndLeavesNoTemporaryFile() throws {
        var canvas = Canvas(width: 4, height: 3, background: Color(hex: 0x102030))
        canvas.fillRect(x: 1, y: 1, width: 2, height: 1, color: Color(hex: 0xff8000))
        let path = folder + "/canvas.png"
        try canvas.writePNG(path: path)
        let decoded = try readPNG(path, channels: 3)
        XCTAssertEqual(Array(decoded.pixels[0..<3]), [0x10, 0x20, 0x30])
        let middle = 3 * (1 * 4 + 1)
        XCTAssertEqual(Array(decoded.pixels[middle..<(middle + 3)]), [0xff, 0x80, 0x00])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["canvas.png"])
    }

    func testOverwritesAnExistingFile() throws {
        let path = folder + "/again.png"
        try RasterImage(width: 1, height: 1, channels: 1, pixels: [10]).writePNG(path: path)
        try RasterImage(width: 2, height: 1, channels: 1, pixels: [20, 30]).writePNG(path: path)
        XCTAssertEqual(try readPNG(path, channels: 1).pixels, [20, 30])
    }

    func testFailureNamesTheFile() throws {
        let path = folder + "/missing-folder/out.png"
        let image = try RasterImage(width: 2, height: 2, channels: 1, pixels: [0, 1, 2, 3])
        XCTAssertThrowsError(try image.writePNG(path: path)) { error in
            guard let error = error as? FileError else { return XCTFail("unexpected error \(error)") }
            XCTAssertEqual(error.path, path)
            XCTAssertTrue(String(describing: error).hasPrefix(path + ": "))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/missing-folder"))
    }

    func testRejectsInconsistentImages() {
        XCTAssertThrowsError(try RasterImage(width: 2, height: 2, channels: 3, pixels: [0, 0, 0]))
        XCTAssertThrowsError(try RasterImage(width: 2, height: 2, channels: 5, pixels: [UInt8](repeating: 0, count: 20)))
        XCTAssertThrowsError(try RasterImage(width: 0, height: 2, channels: 1, pixels: []))
    }
}

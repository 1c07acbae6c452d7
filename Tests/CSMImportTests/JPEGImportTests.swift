import CJPEGShim
import CSMFormats
import CSMImport
import CSMShards
import Foundation
import XCTest

/// ImageFolder import of JPEG files (libjpeg), mixed with PNG-free folders and broken files.
final class JPEGImportTests: XCTestCase {
    func writeJPEG(_ path: String, _ pixels: [UInt8], width: Int, height: Int, channels: Int) throws {
        var message = [CChar](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer {
            csm_jpeg_write(path, pixels, Int32(width), Int32(height), Int32(channels), 100, $0.baseAddress, $0.count)
        }
        XCTAssertEqual(status, 0)
    }

    func testJPEGFolderImports() throws {
        let root = NSTemporaryDirectory() + "csm-jpeg-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["boots", "sneakers"] {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
        }
        // Smooth grey images (JPEG keeps them within a few levels) and one RGB image that
        // must come out grey because the first image is grey.
        let grey: [UInt8] = (0..<48).map { (i: Int) -> UInt8 in UInt8(100 + (i % 8) * 4) }
        try writeJPEG(root + "/boots/a.jpg", grey, width: 8, height: 6, channels: 1)
        try writeJPEG(root + "/boots/b.jpeg", grey.map { $0 &+ 20 }, width: 8, height: 6, channels: 1)
        let rgb = [UInt8](repeating: 200, count: 48 * 3)
        try writeJPEG(root + "/sneakers/c.JPG", rgb, width: 8, height: 6, channels: 3)

        let data = try ImageFolderReader.read(root)
        XCTAssertEqual(data.classNames, ["boots", "sneakers"])
        XCTAssertEqual(data.labels, [0, 0, 1])
        XCTAssertEqual([data.height, data.width, data.channels], [6, 8, 1])
        XCTAssertEqual(data.images.count, 3 * 48)
        for i in 0..<48 {
            XCTAssertLessThanOrEqual(abs(Int(data.images[i]) - Int(grey[i])), 4)
            XCTAssertLessThanOrEqual(abs(Int(data.images[96 + i]) - 200), 4)
        }

        // A file that is not a JPEG is an error naming it.
        let broken = root + "/sneakers/d.jpg"
        _ = FileManager.default.createFile(atPath: broken, contents: Data("not a jpeg".utf8))
        XCTAssertThrowsError(try ImageFolderReader.read(root)) { error in
            XCTAssertTrue("\(error)".contains(broken) && "\(error)".contains("JPEG"), "\(error)")
        }
        // A different size is refused.
        try writeJPEG(broken, [UInt8](repeating: 9, count: 12), width: 4, height: 3, channels: 1)
        XCTAssertThrowsError(try ImageFolderReader.read(root)) { error in XCTAssertTrue("\(error)".contains("4×3"), "\(error)") }
    }
}

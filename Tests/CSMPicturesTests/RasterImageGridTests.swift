import CSMPictures
import XCTest

final class RasterImageGridTests: XCTestCase {
    private func solid(_ value: UInt8, width: Int = 2, height: Int = 2) throws -> RasterImage {
        try RasterImage(width: width, height: height, channels: 1, pixels: [UInt8](repeating: value, count: width * height))
    }

    func testGridLayout() throws {
        let images = try (0..<5).map { try solid(UInt8(10 * ($0 + 1))) }
        let grid = try RasterImage.grid(images, columns: 3, padding: 1, background: Color(gray: 255))
        // 3 columns of 2 px + 4 paddings; 2 rows of 2 px + 3 paddings.
        XCTAssertEqual(grid.width, 10)
        XCTAssertEqual(grid.height, 7)
        XCTAssertEqual(grid.channels, 1)
        func at(_ x: Int, _ y: Int) -> UInt8 { grid.pixels[y * grid.width + x] }
        XCTAssertEqual(at(0, 0), 255)
        XCTAssertEqual(at(1, 1), 10)
        XCTAssertEqual(at(4, 2), 20)
        XCTAssertEqual(at(7, 1), 30)
        XCTAssertEqual(at(1, 4), 40)
        XCTAssertEqual(at(5, 5), 50)
        XCTAssertEqual(at(8, 4), 255, "the sixth cell is empty")
    }

    func testGridScalesAndKeepsColour() throws {
        let red = try RasterImage(width: 1, height: 1, channels: 3, pixels: [200, 10, 20])
        let gray = try solid(90, width: 1, height: 1)
        let grid = try RasterImage.grid([red, gray], columns: 2, padding: 2, scale: 3, background: .black)
        XCTAssertEqual(grid.channels, 3)
        XCTAssertEqual(grid.width, 2 * 3 + 3 * 2)
        XCTAssertEqual(grid.height, 3 + 2 * 2)
        XCTAssertEqual(grid.color(x: 2, y: 2), Color(r: 200, g: 10, b: 20))
        XCTAssertEqual(grid.color(x: 4, y: 4), Color(r: 200, g: 10, b: 20))
        XCTAssertEqual(grid.color(x: 7, y: 2), Color(gray: 90))
        XCTAssertEqual(grid.color(x: 6, y: 2), .black)
    }

    func testGridCentresSmallerImages() throws {
        let big = try solid(0, width: 4, height: 4)
        let small = try solid(100, width: 2, height: 2)
        let grid = try RasterImage.grid([big, small], columns: 2, padding: 0)
        XCTAssertEqual(grid.pixels[1 * grid.width + 5], 100)
        XCTAssertEqual(grid.pixels[0 * grid.width + 5], 255)
    }

    func testGridRejectsBadArguments() throws {
        XCTAssertThrowsError(try RasterImage.grid([], columns: 2))
        XCTAssertThrowsError(try RasterImage.grid([try solid(1)], columns: 0))
        XCTAssertThrowsError(try RasterImage.grid([try solid(1)], columns: 1, scale: 0))
    }
}

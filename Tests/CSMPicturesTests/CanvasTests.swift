import CSMPictures
import XCTest

final class CanvasTests: XCTestCase {
    func testFillRectClipsToTheCanvas() {
        var canvas = Canvas(width: 5, height: 4)
        canvas.fillRect(x: -2, y: 2, width: 4, height: 10, color: .black)
        for y in 0..<4 {
            for x in 0..<5 {
                let expected: Color = (x < 2 && y >= 2) ? .black : .white
                XCTAssertEqual(canvas.pixel(x: x, y: y), expected, "(\(x), \(y))")
            }
        }
        XCTAssertNil(canvas.pixel(x: 5, y: 0))
        XCTAssertNil(canvas.pixel(x: 0, y: -1))
    }

    func testTranslucentColoursBlend() {
        var canvas = Canvas(width: 1, height: 1, background: Color(r: 0, g: 100, b: 200))
        canvas.blend(x: 0, y: 0, color: Color(r: 255, g: 0, b: 0, a: 51))  // 20% opacity
        XCTAssertEqual(canvas.pixel(x: 0, y: 0), Color(r: 51, g: 80, b: 160, a: 255))
        canvas.blend(x: 0, y: 0, color: Color(r: 10, g: 20, b: 30), coverage: 0)
        XCTAssertEqual(canvas.pixel(x: 0, y: 0), Color(r: 51, g: 80, b: 160, a: 255))
    }

    func testStrokeRectDrawsOnlyTheBorder() {
        var canvas = Canvas(width: 6, height: 5)
        canvas.strokeRect(x: 1, y: 1, width: 4, height: 3, color: .black)
        XCTAssertEqual(canvas.pixel(x: 1, y: 1), .black)
        XCTAssertEqual(canvas.pixel(x: 4, y: 3), .black)
        XCTAssertEqual(canvas.pixel(x: 2, y: 2), .white)
        XCTAssertEqual(canvas.pixel(x: 0, y: 0), .white)
        XCTAssertEqual(canvas.pixel(x: 5, y: 4), .white)
    }

    func testLinesCoverTheirPathOnly() {
        var canvas = Canvas(width: 20, height: 10)
        canvas.drawLine(from: (2, 5), to: (18, 5), color: .black, width: 2)
        // Rows 4 and 5 straddle y = 5 and are fully covered along the segment.
        for x in 3..<17 {
            XCTAssertEqual(canvas.pixel(x: x, y: 4), .black, "x = \(x)")
            XCTAssertEqual(canvas.pixel(x: x, y: 5), .black, "x = \(x)")
            XCTAssertEqual(canvas.pixel(x: x, y: 1), .white)
            XCTAssertEqual(canvas.pixel(x: x, y: 8), .white)
        }
        XCTAssertEqual(canvas.pixel(x: 0, y: 5), .white)
    }

    func testDiagonalLinesAreAntialiased() {
        var canvas = Canvas(width: 20, height: 20)
        canvas.drawLine(from: (0, 20), to: (20, 0), color: .black)
        // On the line: dark; beside it: partly covered grey; far away: white.
        let on = canvas.pixel(x: 10, y: 9)!
        XCTAssertLessThan(on.r, 128)
        XCTAssertTrue(canvas.pixels.contains { $0 > 0 && $0 < 255 }, "expected intermediate grey levels")
        XCTAssertEqual(canvas.pixel(x: 2, y: 2), .white)
    }

    func testDashedLinesHaveGaps() {
        var canvas = Canvas(width: 40, height: 3)
        canvas.drawLine(from: (0, 1.5), to: (40, 1.5), color: .black, width: 1, dash: (on: 5, off: 5))
        let row = (0..<40).map { canvas.pixel(x: $0, y: 1)! }
        XCTAssertEqual(row[2], .black)
        XCTAssertEqual(row[7], .white)
        XCTAssertEqual(row[12], .black)
    }

    func testDrawImageScalesWithNearestNeighbour() throws {
        let image = try RasterImage(width: 2, height: 1, channels: 1, pixels: [0, 200])
        var canvas = Canvas(width: 6, height: 3)
        canvas.drawImage(image, x: 1, y: 0, scale: 2)
        XCTAssertEqual(canvas.pixel(x: 1, y: 1), Color(gray: 0))
        XCTAssertEqual(canvas.pixel(x: 2, y: 0), Color(gray: 0))
        XCTAssertEqual(canvas.pixel(x: 3, y: 1), Color(gray: 200))
        XCTAssertEqual(canvas.pixel(x: 4, y: 0), Color(gray: 200))
        XCTAssertEqual(canvas.pixel(x: 5, y: 0), .white)
        XCTAssertEqual(canvas.pixel(x: 1, y: 2), .white)
    }

    func testImageDropsOrKeepsAlpha() {
        let canvas = Canvas(width: 2, height: 2, background: Color(r: 1, g: 2, b: 3, a: 255))
        XCTAssertEqual(canvas.image().channels, 3)
        XCTAssertEqual(canvas.image().pixels, [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3])
        XCTAssertEqual(canvas.image(includeAlpha: true).channels, 4)
    }
}

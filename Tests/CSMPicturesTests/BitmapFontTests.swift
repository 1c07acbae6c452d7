import CSMPictures
import XCTest

final class BitmapFontTests: XCTestCase {
    func testCoversPrintableASCII() {
        for scalar in 32...126 {
            let character = Character(UnicodeScalar(UInt8(scalar)))
            XCTAssertTrue(BitmapFont.contains(character), "missing glyph for \(character)")
            let glyph = BitmapFont.glyph(character)
            XCTAssertTrue((BitmapFont.capHeight...BitmapFont.cellHeight).contains(glyph.count), "\(character): \(glyph.count) rows")
            XCTAssertTrue(glyph.allSatisfy { $0 < 32 }, "\(character) is wider than 5 pixels")
            if character != " " {
                XCTAssertTrue(glyph.contains { $0 != 0 }, "\(character) is blank")
            }
        }
    }

    func testGlyphsAreDistinct() {
        var seen: [[UInt8]: Character] = [:]
        for scalar in 33...126 {
            let character = Character(UnicodeScalar(UInt8(scalar)))
            let glyph = BitmapFont.glyph(character)
            XCTAssertNil(seen[glyph], "\(character) looks like \(seen[glyph].map(String.init) ?? "")")
            seen[glyph] = character
        }
    }

    func testUnknownCharactersDrawABox() {
        XCTAssertFalse(BitmapFont.contains("€"))
        XCTAssertEqual(BitmapFont.glyph("€"), [31, 17, 17, 17, 17, 17, 31])
    }

    func testTextSize() {
        XCTAssertEqual(BitmapFont.size(of: "ECE", scale: 1).width, 17)
        XCTAssertEqual(BitmapFont.size(of: "ECE", scale: 2).width, 34)
        XCTAssertEqual(BitmapFont.size(of: "ab\nc", scale: 1).height, 18)
        XCTAssertEqual(BitmapFont.size(of: "", scale: 3).width, 0)
    }

    func testDrawTextPaintsTheGlyph() {
        var canvas = Canvas(width: 12, height: 12)
        canvas.drawText("1", x: 2, y: 3, color: .black)
        let glyph = BitmapFont.glyph("1")
        for row in 0..<glyph.count {
            for column in 0..<5 {
                let on = glyph[row] & (1 << (4 - column)) != 0
                XCTAssertEqual(canvas.pixel(x: 2 + column, y: 3 + row), on ? .black : .white, "(\(column), \(row))")
            }
        }
    }

    func testAlignmentShiftsTheText() {
        var left = Canvas(width: 40, height: 10), right = Canvas(width: 40, height: 10)
        left.drawText("AB", x: 10, y: 0)
        right.drawText("AB", x: 21, y: 0, alignment: .right)
        XCTAssertEqual(left.pixels, right.pixels)
        var centred = Canvas(width: 40, height: 10)
        centred.drawText("AB", x: 15, y: 0, alignment: .center)
        XCTAssertEqual(left.pixels, centred.pixels)
    }

    func testVerticalTextReadsUpwards() {
        var canvas = Canvas(width: 12, height: 12)
        canvas.drawVerticalText("L", x: 0, y: 10, alignment: .left)
        // "L" has its vertical stroke in column 0 (→ bottom row y = 9) and its foot in row 6
        // (→ column x = 6), spanning columns 0…4 (→ y = 9…5).
        for x in 0..<7 { XCTAssertEqual(canvas.pixel(x: x, y: 9), .black, "stroke at x = \(x)") }
        for y in 5...9 { XCTAssertEqual(canvas.pixel(x: 6, y: y), .black, "foot at y = \(y)") }
        XCTAssertEqual(canvas.pixel(x: 3, y: 6), .white)
    }
}

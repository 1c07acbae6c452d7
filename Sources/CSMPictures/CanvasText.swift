/// Where a text's reference point lies along its width.
public enum TextAlignment: Sendable {
    case left, center, right
}

extension Canvas {
    /// Draws `text` with the built-in `BitmapFont`, each font pixel a `scale` × `scale` block.
    ///
    /// (x, y) is the top of the capitals; `alignment` says whether x is the left edge, the
    /// centre or the right edge of the text. Newlines start new lines.
    public mutating func drawText(
        _ text: String, x: Int, y: Int, color: Color = .black, scale: Int = 1,
        alignment: TextAlignment = .left
    ) {
        let s = max(1, scale)
        for (lineIndex, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineWidth = BitmapFont.size(of: String(line), scale: s).width
            var penX = x
            switch alignment {
            case .left: break
            case .center: penX -= lineWidth / 2
            case .right: penX -= lineWidth
            }
            let top = y + lineIndex * BitmapFont.lineHeight * s
            for character in line {
                for (row, bits) in BitmapFont.glyph(character).enumerated() {
                    for column in 0..<BitmapFont.glyphWidth where bits & (1 << (BitmapFont.glyphWidth - 1 - column)) != 0 {
                        fillRect(x: penX + column * s, y: top + row * s, width: s, height: s, color: color)
                    }
                }
                penX += BitmapFont.advance * s
            }
        }
    }

    /// Draws one line of `text` turned a quarter turn anticlockwise (reading upwards), as
    /// for a y-axis label. (x, y) is the left edge of the capitals and, along the text,
    /// the point that `alignment` names: `.center` centres the text vertically on y.
    public mutating func drawVerticalText(
        _ text: String, x: Int, y: Int, color: Color = .black, scale: Int = 1,
        alignment: TextAlignment = .center
    ) {
        let s = max(1, scale)
        let length = BitmapFont.size(of: text, scale: s).width
        // The text's start (its left end before turning) sits at the bottom.
        var penY: Int
        switch alignment {
        case .left: penY = y
        case .center: penY = y + length / 2
        case .right: penY = y + length
        }
        for character in text where character != "\n" {
            for (row, bits) in BitmapFont.glyph(character).enumerated() {
                for column in 0..<BitmapFont.glyphWidth where bits & (1 << (BitmapFont.glyphWidth - 1 - column)) != 0 {
                    // Font (column, row) maps to canvas (x + row, penY − column − 1).
                    fillRect(x: x + row * s, y: penY - (column + 1) * s, width: s, height: s, color: color)
                }
            }
            penY -= BitmapFont.advance * s
        }
    }
}

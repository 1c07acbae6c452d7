/// A classifier's confusion matrix as a picture: rows are the true classes, columns the
/// predicted ones, each cell shaded by its share of the row (errors in red, the diagonal in
/// grey) and labelled with its count.
public enum ConfusionMatrixPicture {
    /// Draws `counts` (K × K, row = true class, column = predicted class, row-major).
    public static func draw(counts: [Int], classNames: [String], title: String) -> Canvas {
        let k = classNames.count
        let cell = 44, scale = 2
        let nameWidth = classNames.map { BitmapFont.size(of: $0, scale: scale).width }.max() ?? 0
        let left = nameWidth + 16, top = 40 + nameWidth + 8
        var canvas = Canvas(width: left + k * cell + 20, height: top + k * cell + 44)
        canvas.drawText(title, x: canvas.width / 2, y: 10, scale: scale, alignment: .center)
        for row in 0..<k {
            let total = max(1, (0..<k).reduce(0) { $0 + counts[row * k + $1] })
            for column in 0..<k {
                let count = counts[row * k + column]
                let share = Double(count) / Double(total)
                let shade = UInt8(255 - min(255, Int((share * (row == column ? 1 : 10) * 255).rounded())))
                let color = row == column ? Color(gray: max(150, shade)) : Color(r: 255, g: shade, b: shade)
                let x = left + column * cell, y = top + row * cell
                canvas.fillRect(x: x, y: y, width: cell, height: cell, color: color)
                canvas.strokeRect(x: x, y: y, width: cell, height: cell, color: Color(gray: 200))
                if count > 0 {
                    canvas.drawText("\(count)", x: x + cell / 2, y: y + cell / 2 - BitmapFont.capHeight / 2, alignment: .center)
                }
            }
            canvas.drawText(classNames[row], x: left - 8, y: top + row * cell + cell / 2 - BitmapFont.capHeight, scale: scale,
                            alignment: .right)
            canvas.drawVerticalText(classNames[row], x: left + row * cell + cell / 2 - BitmapFont.capHeight, y: top - 8, scale: scale,
                                    alignment: .left)
        }
        canvas.drawText("rows: true class; columns: predicted class", x: canvas.width / 2, y: top + k * cell + 16, scale: scale,
                        alignment: .center)
        return canvas
    }
}

/// A contact sheet: images in a grid with an optional title, column and row labels and a
/// caption under each image — trajectories (rows = seeds or groups, columns = λ) read at a
/// glance.
public struct ContactSheet {
    public var images: [RasterImage]
    public var columns: Int
    public var title: String?
    public var columnLabels: [String]
    public var rowLabels: [String]
    /// One caption per image (or empty).
    public var captions: [String]
    /// Each image pixel becomes a scale × scale block.
    public var scale: Int

    public init(images: [RasterImage], columns: Int, title: String? = nil, columnLabels: [String] = [],
                rowLabels: [String] = [], captions: [String] = [], scale: Int = 2) {
        self.images = images
        self.columns = max(1, columns)
        self.title = title
        self.columnLabels = columnLabels
        self.rowLabels = rowLabels
        self.captions = captions
        self.scale = max(1, scale)
    }

    /// Draws the sheet.
    public func render() -> Canvas {
        let cellWidth = (images.map(\.width).max() ?? 0) * scale
        let cellHeight = (images.map(\.height).max() ?? 0) * scale
        let gap = 4
        let captionHeight = captions.isEmpty ? 0 : BitmapFont.lineHeight + 2
        let left = rowLabels.isEmpty ? gap : (rowLabels.map { BitmapFont.size(of: $0).width }.max() ?? 0) + 2 * gap
        let titleHeight = title == nil ? 0 : 2 * BitmapFont.lineHeight + gap
        let top = titleHeight + (columnLabels.isEmpty ? gap : BitmapFont.lineHeight + 2 * gap)
        let rows = (images.count + columns - 1) / columns
        let width = left + columns * (cellWidth + gap) + gap
        let height = top + rows * (cellHeight + captionHeight + gap) + gap
        var canvas = Canvas(width: width, height: height, background: .white)
        if let title { canvas.drawText(title, x: width / 2, y: gap, color: .black, scale: 2, alignment: .center) }
        for (column, label) in columnLabels.prefix(columns).enumerated() {
            canvas.drawText(label, x: left + column * (cellWidth + gap) + cellWidth / 2, y: titleHeight + gap,
                            color: Color(gray: 60), alignment: .center)
        }
        for (index, image) in images.enumerated() {
            let row = index / columns, column = index % columns
            let x = left + column * (cellWidth + gap), y = top + row * (cellHeight + captionHeight + gap)
            canvas.drawImage(image, x: x, y: y, scale: scale)
            if index < captions.count {
                canvas.drawText(captions[index], x: x + cellWidth / 2, y: y + cellHeight + 2, color: Color(gray: 40), alignment: .center)
            }
            if column == 0, row < rowLabels.count {
                canvas.drawText(rowLabels[row], x: left - gap, y: y + cellHeight / 2 - BitmapFont.capHeight / 2,
                                color: Color(gray: 60), alignment: .right)
            }
        }
        return canvas
    }

    /// Draws the sheet and writes it as a PNG.
    public func writePNG(path: String) throws {
        try render().writePNG(path: path)
    }
}

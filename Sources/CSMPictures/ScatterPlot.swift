import Foundation

/// A scatter plot with lines: per series, semi-transparent points (e.g. jittered samples)
/// and a polyline with markers (e.g. their means), one colour per series; axes with ticks,
/// a grid, labels, an optional dashed y = x diagonal, an optional shaded band of y values,
/// and a legend to the right of the plot.
///
/// Points outside the ranges are drawn on the nearest edge. Text uses the built-in
/// `BitmapFont`; "λ̂" (λ with a combining circumflex) is drawn as λ with a hat.
public struct ScatterPlot: Sendable {
    /// A point in data coordinates.
    public struct Point: Equatable, Sendable {
        public var x: Double
        public var y: Double

        public init(x: Double, y: Double) {
            self.x = x
            self.y = y
        }
    }

    /// One series: its points and its line, in one colour.
    public struct Series: Sendable {
        /// Legend text.
        public var name: String
        public var color: Color
        /// Drawn as small translucent discs.
        public var points: [Point]
        /// Drawn as a polyline with markers, in the given order.
        public var line: [Point]

        public init(name: String, color: Color, points: [Point] = [], line: [Point] = []) {
            self.name = name
            self.color = color
            self.points = points
            self.line = line
        }
    }

    public var title: String
    /// A second, smaller line under the title.
    public var subtitle: String?
    public var xLabel: String
    public var yLabel: String
    public var xRange: ClosedRange<Double>
    public var yRange: ClosedRange<Double>
    public var series: [Series]
    /// Whether to draw the line y = x, dashed.
    public var diagonal: Bool
    /// y values to shade across the plot (e.g. the valid range [0, 1]).
    public var band: ClosedRange<Double>?
    /// Legend text of the band.
    public var bandLabel: String
    /// Legend text of the diagonal.
    public var diagonalLabel: String
    /// Size of the plotting area in pixels.
    public var plotWidth: Int
    public var plotHeight: Int
    /// Radius of the points in pixels.
    public var pointRadius: Double
    /// Opacity of the points, 0–255.
    public var pointAlpha: UInt8

    public init(title: String, subtitle: String? = nil, xLabel: String, yLabel: String,
                xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, series: [Series],
                diagonal: Bool = false, diagonalLabel: String = "y = x",
                band: ClosedRange<Double>? = nil, bandLabel: String = "",
                plotWidth: Int = 640, plotHeight: Int = 480, pointRadius: Double = 2.6, pointAlpha: UInt8 = 110) {
        self.title = title
        self.subtitle = subtitle
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xRange = xRange
        self.yRange = yRange
        self.series = series
        self.diagonal = diagonal
        self.diagonalLabel = diagonalLabel
        self.band = band
        self.bandLabel = bandLabel
        self.plotWidth = max(50, plotWidth)
        self.plotHeight = max(50, plotHeight)
        self.pointRadius = pointRadius
        self.pointAlpha = pointAlpha
    }

    /// Ten distinct colours (Tableau 10), for series in order.
    public static let palette: [Color] = [
        0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf,
    ].map { Color(hex: $0) }

    /// "Nice" tick values covering `range`: steps of 1, 2, 2.5 or 5 times a power of ten,
    /// at most `maximum` + 1 ticks.
    public static func ticks(_ range: ClosedRange<Double>, maximum: Int = 8) -> [Double] {
        let span = range.upperBound - range.lowerBound
        guard span > 0, span.isFinite else { return [range.lowerBound] }
        let magnitude = pow(10, (log10(span / Double(max(1, maximum)))).rounded(.down))
        let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { span / $0 <= Double(maximum) } ?? 10 * magnitude
        let first = (range.lowerBound / step).rounded(.up)
        let last = (range.upperBound / step).rounded(.down)
        guard first <= last else { return [] }
        return stride(from: first, through: last, by: 1).map { ($0 * step * 1e9).rounded() / 1e9 }
    }

    /// Draws the plot on a white canvas.
    public func render() -> Canvas {
        let layout = Layout(plot: self)
        var canvas = Canvas(width: layout.width, height: layout.height, background: .white)
        let left = layout.plotLeft, top = layout.plotTop, right = left + plotWidth, bottom = top + plotHeight
        let s = Layout.text
        func px(_ x: Double) -> Double { self.px(x, layout) }
        func py(_ y: Double) -> Double { self.py(y, layout) }
        func clampX(_ x: Double) -> Double { px(min(max(x, xRange.lowerBound), xRange.upperBound)) }
        func clampY(_ y: Double) -> Double { py(min(max(y, yRange.lowerBound), yRange.upperBound)) }

        // Title and subtitle, centred over the plot.
        let centre = left + plotWidth / 2
        canvas.drawLabel(title, x: centre, y: Layout.titleTop, color: Palette.ink, scale: 3, alignment: .center)
        if let subtitle {
            canvas.drawLabel(subtitle, x: centre, y: Layout.titleTop + 3 * BitmapFont.capHeight + 12, color: Palette.muted,
                             scale: s, alignment: .center)
        }

        // The band, the grid, ticks and their labels.
        if let band {
            let y0 = clampY(band.upperBound), y1 = clampY(band.lowerBound)
            canvas.fillRect(x: left, y: Int(y0.rounded()), width: plotWidth, height: Int((y1 - y0).rounded()), color: Palette.band)
            for edge in [band.lowerBound, band.upperBound] where yRange.contains(edge) {
                canvas.fillRect(x: left, y: Int(py(edge).rounded()), width: plotWidth, height: 1, color: Palette.bandEdge)
            }
        }
        for tick in Self.ticks(xRange) {
            let x = Int(px(tick).rounded())
            canvas.fillRect(x: x, y: top, width: 1, height: plotHeight, color: Palette.grid)
            canvas.fillRect(x: x, y: bottom + 1, width: 1, height: 6, color: Palette.frame)
            canvas.drawLabel(Self.format(tick), x: x, y: bottom + 12, color: Palette.ink, scale: s, alignment: .center)
        }
        for tick in Self.ticks(yRange) {
            let y = Int(py(tick).rounded())
            if band.map({ $0.lowerBound == tick || $0.upperBound == tick }) != true {
                canvas.fillRect(x: left, y: y, width: plotWidth, height: 1, color: Palette.grid)
            }
            canvas.fillRect(x: left - 6, y: y, width: 6, height: 1, color: Palette.frame)
            canvas.drawLabel(Self.format(tick), x: left - 12, y: y - BitmapFont.capHeight * s / 2, color: Palette.ink, scale: s,
                             alignment: .right)
        }
        canvas.drawLabel(xLabel, x: centre, y: bottom + 12 + BitmapFont.lineHeight * s + 8, color: Palette.ink, scale: s,
                         alignment: .center)
        canvas.drawVerticalLabel(yLabel, x: Layout.margin, y: top + plotHeight / 2, color: Palette.ink, scale: s)

        // The diagonal y = x, clipped to the plot.
        if diagonal {
            let low = max(xRange.lowerBound, yRange.lowerBound), high = min(xRange.upperBound, yRange.upperBound)
            if low < high {
                canvas.drawLine(from: (px(low), py(low)), to: (px(high), py(high)), color: Palette.diagonal, width: 2,
                                dash: (on: 9, off: 6))
            }
        }

        // Points, then lines with markers on top.
        for series in series {
            let color = series.color.withAlpha(pointAlpha)
            for point in series.points {
                canvas.fillDisc(x: clampX(point.x), y: clampY(point.y), radius: pointRadius, color: color)
            }
        }
        for series in series where !series.line.isEmpty {
            let points = series.line.map { (x: clampX($0.x), y: clampY($0.y)) }
            for (a, b) in zip(points, points.dropFirst()) {
                canvas.drawLine(from: a, to: b, color: .white, width: 5)
            }
            for (a, b) in zip(points, points.dropFirst()) {
                canvas.drawLine(from: a, to: b, color: series.color, width: 2.5)
            }
            for point in points {
                canvas.fillDisc(x: point.x, y: point.y, radius: 5.5, color: .white)
                canvas.fillDisc(x: point.x, y: point.y, radius: 4, color: series.color)
            }
        }
        canvas.strokeRect(x: left, y: top, width: plotWidth + 1, height: plotHeight + 1, color: Palette.frame)
        drawLegend(on: &canvas, layout: layout)
        return canvas
    }

    /// Renders the plot and writes it as a PNG (atomically; errors name the file).
    public func writePNG(path: String) throws {
        try render().writePNG(path: path)
    }

    // MARK: - Geometry

    /// Pixel geometry: margins, the plot's corner, the legend's box.
    struct Layout {
        static let text = 2
        static let margin = 16
        static let titleTop = 16
        static let legendRow = 26
        static let swatch = 34

        let plotLeft: Int
        let plotTop: Int
        let legendLeft: Int
        let legendWidth: Int
        let legendHeight: Int
        let width: Int
        let height: Int

        init(plot: ScatterPlot) {
            let s = Self.text
            let tickWidth = ScatterPlot.ticks(plot.yRange).map { BitmapFont.size(of: ScatterPlot.format($0), scale: s).width }.max() ?? 0
            plotLeft = Self.margin + BitmapFont.capHeight * s + 16 + tickWidth + 12
            plotTop = Self.titleTop + 3 * BitmapFont.capHeight + (plot.subtitle == nil ? 0 : 12 + BitmapFont.capHeight * s) + 28
            let names = plot.legendEntries.map { BitmapFont.size(of: $0.text, scale: s).width }
            legendWidth = (names.max() ?? 0) + Self.swatch + 30
            legendHeight = plot.legendEntries.count * Self.legendRow + 14
            legendLeft = plotLeft + plot.plotWidth + 24
            width = legendLeft + legendWidth + Self.margin
            let plotBottom = plotTop + plot.plotHeight
            height = max(plotBottom + 12 + 2 * BitmapFont.lineHeight * s + 16, plotTop + legendHeight + Self.margin)
        }
    }

    /// Pixel x of data x (pixel edges: the plot spans [plotLeft, plotLeft + plotWidth]).
    private func px(_ x: Double, _ layout: Layout) -> Double {
        Double(layout.plotLeft) + (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * Double(plotWidth)
    }

    /// Pixel y of data y.
    private func py(_ y: Double, _ layout: Layout) -> Double {
        Double(layout.plotTop + plotHeight) - (y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound) * Double(plotHeight)
    }

    // MARK: - Legend

    private enum LegendMark { case series(Color), diagonal, band }

    private var legendEntries: [(text: String, mark: LegendMark)] {
        var entries = series.map { ($0.name, LegendMark.series($0.color)) }
        if diagonal { entries.append((diagonalLabel, .diagonal)) }
        if band != nil && !bandLabel.isEmpty { entries.append((bandLabel, .band)) }
        return entries
    }

    private func drawLegend(on canvas: inout Canvas, layout: Layout) {
        let entries = legendEntries
        guard !entries.isEmpty else { return }
        let x = layout.legendLeft, y = layout.plotTop
        canvas.strokeRect(x: x, y: y, width: layout.legendWidth, height: layout.legendHeight, color: Palette.grid)
        for (row, entry) in entries.enumerated() {
            let top = y + 12 + row * Layout.legendRow
            let middle = Double(top) + Double(BitmapFont.capHeight * Layout.text) / 2
            let swatchLeft = Double(x + 10), swatchRight = swatchLeft + Double(Layout.swatch) - 8
            switch entry.mark {
            case .series(let color):
                canvas.drawLine(from: (swatchLeft, middle), to: (swatchRight, middle), color: color, width: 2.5)
                canvas.fillDisc(x: (swatchLeft + swatchRight) / 2, y: middle, radius: 5.5, color: .white)
                canvas.fillDisc(x: (swatchLeft + swatchRight) / 2, y: middle, radius: 4, color: color)
            case .diagonal:
                canvas.drawLine(from: (swatchLeft, middle), to: (swatchRight, middle), color: Palette.diagonal, width: 2,
                                dash: (on: 7, off: 4))
            case .band:
                canvas.fillRect(x: Int(swatchLeft), y: top - 2, width: Layout.swatch - 8, height: BitmapFont.capHeight * Layout.text + 4,
                                color: Palette.band)
                canvas.strokeRect(x: Int(swatchLeft), y: top - 2, width: Layout.swatch - 8, height: BitmapFont.capHeight * Layout.text + 4,
                                  color: Palette.bandEdge)
            }
            canvas.drawLabel(entry.text, x: x + 10 + Layout.swatch + 4, y: top, color: Palette.ink, scale: Layout.text)
        }
    }

    private enum Palette {
        static let ink = Color(hex: 0x222222)
        static let muted = Color(hex: 0x666666)
        static let grid = Color(hex: 0xe4e4e4)
        static let frame = Color(hex: 0x444444)
        static let diagonal = Color(hex: 0x555555)
        static let band = Color(hex: 0xeef2f7)
        static let bandEdge = Color(hex: 0xa9b8cc)
    }

    /// A tick label: at most two decimals, no trailing zeros ("0", "0.5", "-0.25").
    static func format(_ value: Double) -> String {
        var text = String(format: "%.2f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }
}

extension Canvas {
    /// Fills an anti-aliased disc centred at (x, y) in pixel coordinates.
    mutating func fillDisc(x: Double, y: Double, radius: Double, color: Color) {
        let minX = Int((x - radius - 1).rounded(.down)), maxX = Int((x + radius + 1).rounded(.up))
        let minY = Int((y - radius - 1).rounded(.down)), maxY = Int((y + radius + 1).rounded(.up))
        guard minX <= maxX, minY <= maxY else { return }
        for py in minY...maxY {
            for px in minX...maxX {
                let dx = Double(px) + 0.5 - x, dy = Double(py) + 0.5 - y
                let coverage = radius + 0.5 - (dx * dx + dy * dy).squareRoot()
                if coverage > 0 { blend(x: px, y: py, color: color, coverage: coverage) }
            }
        }
    }

    /// `drawText`, with "λ̂" drawn as λ under a hat (the font has no glyph for it).
    mutating func drawLabel(_ text: String, x: Int, y: Int, color: Color, scale: Int, alignment: TextAlignment = .left) {
        let plain = String(text.map { $0 == Self.lambdaHat ? "λ" : $0 })
        drawText(plain, x: x, y: y, color: color, scale: scale, alignment: alignment)
        let width = BitmapFont.size(of: plain, scale: scale).width
        let start = alignment == .left ? x : alignment == .center ? x - width / 2 : x - width
        for (index, character) in text.enumerated() where character == Self.lambdaHat {
            let left = start + index * BitmapFont.advance * scale
            // The hat: font pixel (2, −2) and (1, −1), (3, −1), above the λ.
            for (column, row) in Self.hatPixels {
                fillRect(x: left + column * scale, y: y + row * scale, width: scale, height: scale, color: color)
            }
        }
    }

    /// `drawVerticalText` (reading upwards, centred on y), with "λ̂" drawn as λ under a hat.
    mutating func drawVerticalLabel(_ text: String, x: Int, y: Int, color: Color, scale: Int) {
        let plain = String(text.map { $0 == Self.lambdaHat ? "λ" : $0 })
        // The hat sticks out above the letters (to the left when turned): leave it room.
        let x = x + 2 * scale
        drawVerticalText(plain, x: x, y: y, color: color, scale: scale, alignment: .center)
        let start = y + BitmapFont.size(of: plain, scale: scale).width / 2
        for (index, character) in text.enumerated() where character == Self.lambdaHat {
            let penY = start - index * BitmapFont.advance * scale
            for (column, row) in Self.hatPixels {
                fillRect(x: x + row * scale, y: penY - (column + 1) * scale, width: scale, height: scale, color: color)
            }
        }
    }

    private static let lambdaHat: Character = "λ̂"
    private static let hatPixels = [(2, -3), (1, -2), (3, -2)]
}

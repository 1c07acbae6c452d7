import CSMCalibration
import Foundation

/// A reliability diagram: per equal-width bin, the accuracy of the samples against their
/// mean confidence (bars), the gap to perfect calibration (red), the diagonal, the ECE in
/// the title, and a histogram of the confidences beneath.
///
/// Several panels sit side by side, e.g. before and after temperature scaling.
public struct ReliabilityDiagram: Sendable {
    /// One diagram: a title and the metrics whose equal-width bins it draws.
    public struct Panel: Sendable {
        public var title: String
        public var metrics: CalibrationMetrics

        public init(title: String, metrics: CalibrationMetrics) {
            self.title = title
            self.metrics = metrics
        }
    }

    public var panels: [Panel]

    public init(panels: [Panel]) {
        self.panels = panels
    }

    /// A single-panel diagram.
    public init(metrics: CalibrationMetrics, title: String = "Reliability") {
        self.init(panels: [Panel(title: title, metrics: metrics)])
    }

    /// Draws the panels on a white canvas.
    public func render() -> Canvas {
        let layout = Layout()
        var canvas = Canvas(width: max(1, panels.count) * layout.panelWidth, height: layout.panelHeight)
        for (index, panel) in panels.enumerated() {
            draw(panel, on: &canvas, left: index * layout.panelWidth, layout: layout)
        }
        return canvas
    }

    /// Renders and writes the diagram as a PNG (atomically; errors name the file).
    public func writePNG(path: String) throws {
        try render().writePNG(path: path)
    }

    // MARK: - Drawing

    /// Pixel geometry of one panel.
    struct Layout {
        let text = 2  // font scale of labels
        let plotSize = 420
        let histogramHeight = 110
        let left = 84
        let right = 36
        let titleTop = 18
        var plotTop: Int { titleTop + 3 * 7 + 12 + 2 * 7 + 22 }
        var histogramTop: Int { plotTop + plotSize + 18 }
        var panelWidth: Int { left + plotSize + right }
        var panelHeight: Int { histogramTop + histogramHeight + 14 + 14 + 14 + 14 + 18 }
    }

    private enum Palette {
        static let ink = Color(hex: 0x222222)
        static let muted = Color(hex: 0x666666)
        static let grid = Color(hex: 0xe6e6e6)
        static let frame = Color(hex: 0x444444)
        static let accuracy = Color(hex: 0x2f6fb0)
        static let accuracyEdge = Color(hex: 0x1d4e82)
        static let gapFill = Color(hex: 0xf08a80, alpha: 110)
        static let gapStripe = Color(hex: 0xd0362c, alpha: 235)
        static let gapEdge = Color(hex: 0xb8322a)
        static let diagonal = Color(hex: 0x555555)
        static let histogram = Color(hex: 0x8aa9c9)
        static let histogramEdge = Color(hex: 0x5d7fa3)
        static let confidenceLine = Color(hex: 0xd9453b)
        static let accuracyLine = Color(hex: 0x1d4e82)
    }

    private func draw(_ panel: Panel, on canvas: inout Canvas, left panelLeft: Int, layout: Layout) {
        let m = panel.metrics
        let s = layout.text
        let x0 = panelLeft + layout.left, size = layout.plotSize
        let plotTop = layout.plotTop, plotBottom = plotTop + size
        let centre = x0 + size / 2

        // Title and subtitle.
        let title = "\(panel.title)  ECE \(percent(m.ece))"
        canvas.drawText(title, x: centre, y: layout.titleTop, color: Palette.ink, scale: 3, alignment: .center)
        let subtitle = "n=\(m.sampleCount)  acc \(percent(m.accuracy))  MCE \(percent(m.mce))"
        canvas.drawText(subtitle, x: centre, y: layout.titleTop + 3 * 7 + 12, color: Palette.muted, scale: s, alignment: .center)

        func px(_ v: Double) -> Double { Double(x0) + v * Double(size) }
        func py(_ v: Double) -> Double { Double(plotBottom) - v * Double(size) }

        // Grid, ticks and tick labels.
        for tick in 0...5 {
            let v = Double(tick) / 5
            let gx = Int(px(v).rounded()), gy = Int(py(v).rounded())
            canvas.fillRect(x: gx, y: plotTop, width: 1, height: size, color: Palette.grid)
            canvas.fillRect(x: x0, y: gy, width: size, height: 1, color: Palette.grid)
            let label = tickLabel(v)
            canvas.drawText(label, x: x0 - 10, y: gy - 7, color: Palette.ink, scale: s, alignment: .right)
            canvas.fillRect(x: x0 - 5, y: gy, width: 5, height: 1, color: Palette.frame)
        }
        canvas.drawVerticalText("Accuracy", x: panelLeft + 12, y: plotTop + size / 2, color: Palette.ink, scale: s)

        // Bars: accuracy, then the gap up or down to the mean confidence.
        for bin in m.bins where bin.count > 0 {
            let left = Int(px(bin.lower).rounded()), right = Int(px(bin.upper).rounded())
            let accuracyTop = Int(py(bin.accuracy).rounded())
            canvas.fillRect(x: left, y: accuracyTop, width: right - left, height: plotBottom - accuracyTop, color: Palette.accuracy)
            canvas.strokeRect(x: left, y: accuracyTop, width: right - left + 1, height: plotBottom - accuracyTop + 1, color: Palette.accuracyEdge)
            let confidenceY = Int(py(bin.meanConfidence).rounded())
            let top = min(accuracyTop, confidenceY), bottom = max(accuracyTop, confidenceY)
            if bottom > top {
                hatch(&canvas, x: left, y: top, width: right - left, height: bottom - top)
                canvas.strokeRect(x: left, y: top, width: right - left + 1, height: bottom - top + 1, color: Palette.gapEdge)
            }
        }
        canvas.drawLine(
            from: (px(0), py(0)), to: (px(1), py(1)), color: Palette.diagonal, width: 2, dash: (on: 8, off: 6))
        canvas.strokeRect(x: x0, y: plotTop, width: size + 1, height: size + 1, color: Palette.frame)

        // Legend, top left inside the plot.
        let legendX = x0 + 14, legendY = plotTop + 14
        canvas.fillRect(x: legendX - 6, y: legendY - 6, width: 226, height: 76, color: Color.white.withAlpha(225))
        canvas.strokeRect(x: legendX - 6, y: legendY - 6, width: 226, height: 76, color: Palette.grid)
        canvas.fillRect(x: legendX, y: legendY, width: 22, height: 14, color: Palette.accuracy)
        canvas.strokeRect(x: legendX, y: legendY, width: 22, height: 14, color: Palette.accuracyEdge)
        canvas.drawText("Accuracy", x: legendX + 32, y: legendY, color: Palette.ink, scale: s)
        hatch(&canvas, x: legendX, y: legendY + 22, width: 22, height: 14)
        canvas.strokeRect(x: legendX, y: legendY + 22, width: 22, height: 14, color: Palette.gapEdge)
        canvas.drawText("Gap", x: legendX + 32, y: legendY + 22, color: Palette.ink, scale: s)
        canvas.drawLine(
            from: (Double(legendX), Double(legendY + 51)), to: (Double(legendX + 22), Double(legendY + 51)),
            color: Palette.diagonal, width: 2, dash: (on: 6, off: 4))
        canvas.drawText("Perfect calibration", x: legendX + 32, y: legendY + 44, color: Palette.ink, scale: s)

        drawHistogram(m, on: &canvas, panelLeft: panelLeft, layout: layout, px: px)
    }

    private func drawHistogram(
        _ m: CalibrationMetrics, on canvas: inout Canvas, panelLeft: Int, layout: Layout, px: (Double) -> Double
    ) {
        let s = layout.text
        let x0 = panelLeft + layout.left, size = layout.plotSize
        let top = layout.histogramTop, height = layout.histogramHeight, bottom = top + height
        let total = Double(max(1, m.sampleCount))
        let largest = m.bins.map { Double($0.count) / total }.max() ?? 0
        let (step, ceiling) = niceScale(largest)
        func hy(_ fraction: Double) -> Int { bottom - Int((fraction / ceiling * Double(height)).rounded()) }

        var tick = 0.0
        while tick <= ceiling + 1e-12 {
            let y = hy(tick)
            canvas.fillRect(x: x0, y: y, width: size, height: 1, color: Palette.grid)
            canvas.fillRect(x: x0 - 5, y: y, width: 5, height: 1, color: Palette.frame)
            canvas.drawText(percentLabel(tick), x: x0 - 10, y: y - 7, color: Palette.ink, scale: s, alignment: .right)
            tick += step
        }
        for bin in m.bins where bin.count > 0 {
            let left = Int(px(bin.lower).rounded()), right = Int(px(bin.upper).rounded())
            let y = hy(Double(bin.count) / total)
            canvas.fillRect(x: left, y: y, width: right - left, height: bottom - y, color: Palette.histogram)
            canvas.strokeRect(x: left, y: y, width: right - left + 1, height: bottom - y + 1, color: Palette.histogramEdge)
        }
        // Mean confidence and accuracy as vertical lines, with a small legend top right.
        let confidenceX = px(m.meanConfidence), accuracyX = px(m.accuracy)
        canvas.drawLine(
            from: (accuracyX, Double(top)), to: (accuracyX, Double(bottom)), color: Palette.accuracyLine, width: 2,
            dash: (on: 6, off: 4))
        canvas.drawLine(
            from: (confidenceX, Double(top)), to: (confidenceX, Double(bottom)), color: Palette.confidenceLine, width: 2,
            dash: (on: 6, off: 4))
        // The legend goes in the top corner over the lower bars.
        let boxWidth = 164, boxY = top + 6
        func tallest(from lower: Double, to upper: Double) -> Int {
            m.bins.filter { $0.upper > lower && $0.lower < upper }.map(\.count).max() ?? 0
        }
        let boxSpan = Double(boxWidth + 6) / Double(size)
        let boxX = tallest(from: 1 - boxSpan, to: 1) <= tallest(from: 0, to: boxSpan)
            ? x0 + size - boxWidth - 6 : x0 + 6
        canvas.fillRect(x: boxX, y: boxY, width: boxWidth, height: 44, color: Color.white.withAlpha(230))
        canvas.strokeRect(x: boxX, y: boxY, width: boxWidth, height: 44, color: Palette.grid)
        for (row, (label, color)) in [("accuracy", Palette.accuracyLine), ("avg conf", Palette.confidenceLine)].enumerated() {
            let y = boxY + 8 + row * 18
            canvas.drawLine(
                from: (Double(boxX + 8), Double(y) + 7), to: (Double(boxX + 34), Double(y) + 7), color: color, width: 2,
                dash: (on: 6, off: 4))
            canvas.drawText(label, x: boxX + 42, y: y, color: color, scale: s)
        }
        canvas.strokeRect(x: x0, y: top, width: size + 1, height: height + 1, color: Palette.frame)
        canvas.drawVerticalText("Samples", x: panelLeft + 12, y: top + height / 2, color: Palette.ink, scale: s)

        for tickIndex in 0...5 {
            let v = Double(tickIndex) / 5
            let x = Int(px(v).rounded())
            canvas.fillRect(x: x, y: bottom + 1, width: 1, height: 5, color: Palette.frame)
            canvas.drawText(tickLabel(v), x: x, y: bottom + 10, color: Palette.ink, scale: s, alignment: .center)
        }
        canvas.drawText("Confidence", x: x0 + size / 2, y: bottom + 34, color: Palette.ink, scale: s, alignment: .center)
    }

    /// Fills a rectangle with the gap pattern: translucent red with diagonal red stripes, so
    /// the gap reads the same over a bar and over the background.
    private func hatch(_ canvas: inout Canvas, x: Int, y: Int, width: Int, height: Int) {
        canvas.fillRect(x: x, y: y, width: width, height: height, color: Palette.gapFill)
        for yy in y..<(y + max(0, height)) {
            for xx in x..<(x + max(0, width)) where (xx + yy) % 7 < 2 {
                canvas.blend(x: xx, y: yy, color: Palette.gapStripe)
            }
        }
    }

    /// A tick step and a ceiling above `largest` (a fraction) with at most 5 steps.
    private func niceScale(_ largest: Double) -> (step: Double, ceiling: Double) {
        let steps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5]
        let target = max(largest * 1.1, 0.01)  // headroom above the tallest bar
        let step = steps.first { target / $0 <= 5 } ?? 0.5
        return (step, max(step, (target / step).rounded(.up) * step))
    }

    private func tickLabel(_ v: Double) -> String {
        v == 0 ? "0" : v == 1 ? "1" : String(format: "%.1f", v)
    }

    private func percent(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }

    /// Whole percents: the histogram's steps are at least 1%.
    private func percentLabel(_ v: Double) -> String { "\(Int((v * 100).rounded()))%" }
}

/// A raster of RGBA pixels to draw charts and contact sheets on.
///
/// The origin is the top-left corner; x grows to the right, y downwards. Drawing clips to the
/// canvas, so callers may draw partly outside it. Colours with alpha below 255 blend over
/// what is already there.
public struct Canvas: Sendable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Row-major RGBA bytes, `4 · width · height` of them.
    public private(set) var pixels: [UInt8]

    /// A canvas of the given size filled with `background` (white by default).
    public init(width: Int, height: Int, background: Color = .white) {
        self.width = max(0, width)
        self.height = max(0, height)
        pixels = [UInt8](repeating: 0, count: 4 * self.width * self.height)
        fill(background)
    }

    /// The colour at (x, y), or nil outside the canvas.
    public func pixel(x: Int, y: Int) -> Color? {
        guard x >= 0, y >= 0, x < width, y < height else { return nil }
        let i = 4 * (y * width + x)
        return Color(r: pixels[i], g: pixels[i + 1], b: pixels[i + 2], a: pixels[i + 3])
    }

    /// Paints every pixel with `color`, replacing (not blending) what was there.
    public mutating func fill(_ color: Color) {
        for i in stride(from: 0, to: pixels.count, by: 4) {
            pixels[i] = color.r
            pixels[i + 1] = color.g
            pixels[i + 2] = color.b
            pixels[i + 3] = color.a
        }
    }

    /// Blends `color` onto pixel (x, y); `coverage` in [0, 1] scales its opacity
    /// (anti-aliased shapes pass the fraction of the pixel they cover).
    public mutating func blend(x: Int, y: Int, color: Color, coverage: Double = 1) {
        guard x >= 0, y >= 0, x < width, y < height, coverage > 0 else { return }
        let alpha = Double(color.a) / 255 * min(coverage, 1)
        let i = 4 * (y * width + x)
        if alpha >= 1 {
            pixels[i] = color.r
            pixels[i + 1] = color.g
            pixels[i + 2] = color.b
            pixels[i + 3] = 255
            return
        }
        func mix(_ src: UInt8, _ dst: UInt8) -> UInt8 {
            UInt8((Double(src) * alpha + Double(dst) * (1 - alpha)).rounded())
        }
        pixels[i] = mix(color.r, pixels[i])
        pixels[i + 1] = mix(color.g, pixels[i + 1])
        pixels[i + 2] = mix(color.b, pixels[i + 2])
        let dstAlpha = Double(pixels[i + 3]) / 255
        pixels[i + 3] = UInt8(((alpha + dstAlpha * (1 - alpha)) * 255).rounded())
    }

    /// Fills the axis-aligned rectangle with its top-left corner at (x, y).
    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, color: Color) {
        let x0 = max(0, x), y0 = max(0, y)
        let x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            for xx in x0..<x1 {
                blend(x: xx, y: yy, color: color)
            }
        }
    }

    /// Draws the outline of a rectangle, `lineWidth` pixels thick, inside its bounds.
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, color: Color, lineWidth: Int = 1) {
        guard w > 0, h > 0, lineWidth > 0 else { return }
        let t = min(lineWidth, (min(w, h) + 1) / 2)
        fillRect(x: x, y: y, width: w, height: t, color: color)
        fillRect(x: x, y: y + h - t, width: w, height: t, color: color)
        fillRect(x: x, y: y + t, width: t, height: h - 2 * t, color: color)
        fillRect(x: x + w - t, y: y + t, width: t, height: h - 2 * t, color: color)
    }

    /// Draws an anti-aliased straight line between two points given in pixel coordinates
    /// (pixel (i, j) covers [i, i+1) × [j, j+1), so its centre is (i + 0.5, j + 0.5)).
    ///
    /// - Parameters:
    ///   - width: line thickness in pixels.
    ///   - dash: optional (on, off) lengths in pixels for a dashed line.
    public mutating func drawLine(
        from start: (x: Double, y: Double), to end: (x: Double, y: Double),
        color: Color, width lineWidth: Double = 1, dash: (on: Double, off: Double)? = nil
    ) {
        let dx = end.x - start.x, dy = end.y - start.y
        let length = (dx * dx + dy * dy).squareRoot()
        let half = max(lineWidth, 0.5) / 2
        let minX = Int((min(start.x, end.x) - half - 1).rounded(.down))
        let maxX = Int((max(start.x, end.x) + half + 1).rounded(.up))
        let minY = Int((min(start.y, end.y) - half - 1).rounded(.down))
        let maxY = Int((max(start.y, end.y) + half + 1).rounded(.up))
        for py in max(0, minY)..<max(max(0, minY), min(height, maxY + 1)) {
            for px in max(0, minX)..<max(max(0, minX), min(width, maxX + 1)) {
                let cx = Double(px) + 0.5, cy = Double(py) + 0.5
                // Position along the segment (t, in pixels) and distance from it.
                var along = 0.0, distance: Double
                if length > 0 {
                    along = ((cx - start.x) * dx + (cy - start.y) * dy) / length
                    let clamped = min(max(along, 0), length)
                    let nx = start.x + dx * clamped / length, ny = start.y + dy * clamped / length
                    distance = ((cx - nx) * (cx - nx) + (cy - ny) * (cy - ny)).squareRoot()
                } else {
                    distance = ((cx - start.x) * (cx - start.x) + (cy - start.y) * (cy - start.y)).squareRoot()
                }
                let coverage = half + 0.5 - distance
                guard coverage > 0 else { continue }
                if let dash, dash.on > 0, dash.off > 0 {
                    let phase = along.truncatingRemainder(dividingBy: dash.on + dash.off)
                    if phase > dash.on { continue }
                }
                blend(x: px, y: py, color: color, coverage: coverage)
            }
        }
    }

    /// Copies an image onto the canvas with its top-left corner at (x, y), each source pixel
    /// becoming a `scale` × `scale` block (nearest neighbour). Grayscale images are drawn grey.
    public mutating func drawImage(_ image: RasterImage, x: Int, y: Int, scale: Int = 1) {
        let s = max(1, scale)
        for sy in 0..<image.height {
            for sx in 0..<image.width {
                let color = image.color(x: sx, y: sy)
                for oy in 0..<s {
                    for ox in 0..<s {
                        blend(x: x + sx * s + ox, y: y + sy * s + oy, color: color)
                    }
                }
            }
        }
    }

    /// The canvas as an image with 3 (RGB, alpha dropped) or 4 (RGBA) channels.
    public func image(includeAlpha: Bool = false) -> RasterImage {
        if includeAlpha {
            return RasterImage(uncheckedWidth: width, height: height, channels: 4, pixels: pixels)
        }
        var rgb = [UInt8](repeating: 0, count: 3 * width * height)
        for p in 0..<(width * height) {
            rgb[3 * p] = pixels[4 * p]
            rgb[3 * p + 1] = pixels[4 * p + 1]
            rgb[3 * p + 2] = pixels[4 * p + 2]
        }
        return RasterImage(uncheckedWidth: width, height: height, channels: 3, pixels: rgb)
    }

    /// Writes the canvas as a PNG file (RGB, or RGBA when `includeAlpha`), atomically:
    /// the file appears complete under `path` or not at all.
    public func writePNG(path: String, includeAlpha: Bool = false) throws {
        try image(includeAlpha: includeAlpha).writePNG(path: path)
    }
}

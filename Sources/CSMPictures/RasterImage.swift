/// An 8-bit image: grayscale (1 channel), grayscale + alpha (2), RGB (3) or RGBA (4),
/// stored row-major with interleaved channels, as in a uint8 [H, W, C] array.
public struct RasterImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// Channels per pixel: 1, 2, 3 or 4.
    public let channels: Int
    /// `width · height · channels` bytes.
    public let pixels: [UInt8]

    /// An image over `pixels` (row-major, channels interleaved).
    /// Throws when the channel count is not 1...4 or the byte count does not match.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else {
            throw PictureError.invalidImage("size \(width)x\(height) is empty")
        }
        guard (1...4).contains(channels) else {
            throw PictureError.invalidImage("\(channels) channels (expected 1, 2, 3 or 4)")
        }
        guard pixels.count == width * height * channels else {
            throw PictureError.invalidImage(
                "\(pixels.count) bytes for \(width)x\(height)x\(channels) (expected \(width * height * channels))")
        }
        self.init(uncheckedWidth: width, height: height, channels: channels, pixels: pixels)
    }

    init(uncheckedWidth width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The pixel at (x, y) as a colour (gray levels become equal RGB components).
    public func color(x: Int, y: Int) -> Color {
        let i = (y * width + x) * channels
        switch channels {
        case 1: return Color(gray: pixels[i])
        case 2: return Color(gray: pixels[i], alpha: pixels[i + 1])
        case 3: return Color(r: pixels[i], g: pixels[i + 1], b: pixels[i + 2])
        default: return Color(r: pixels[i], g: pixels[i + 1], b: pixels[i + 2], a: pixels[i + 3])
        }
    }

    /// Writes the image as a PNG file through libpng, atomically (a temporary file in the
    /// same folder is renamed into place). Errors name the file.
    public func writePNG(path: String) throws {
        try PNGWriter.write(self, to: path)
    }

    /// Lays images out in a grid, row by row, `padding` pixels between cells and around
    /// the edge, each image enlarged `scale` times (nearest neighbour, handy for 28×28
    /// samples). Images may differ in size and channels: cells take the largest size, and
    /// the result has 1 channel when all inputs are grayscale, 3 otherwise (alpha is
    /// composited over `background`).
    ///
    /// - Parameters:
    ///   - columns: cells per row; the row count follows from the number of images.
    public static func grid(
        _ images: [RasterImage], columns: Int, padding: Int = 2, scale: Int = 1,
        background: Color = .white
    ) throws -> RasterImage {
        guard !images.isEmpty else { throw PictureError.invalidImage("no images for the grid") }
        guard columns > 0 else { throw PictureError.invalidImage("grid needs at least one column, got \(columns)") }
        guard padding >= 0 else { throw PictureError.invalidImage("negative padding \(padding)") }
        guard scale > 0 else { throw PictureError.invalidImage("scale must be positive, got \(scale)") }
        let cellWidth = images.map(\.width).max()! * scale
        let cellHeight = images.map(\.height).max()! * scale
        let rows = (images.count + columns - 1) / columns
        let usedColumns = min(columns, images.count)
        let width = usedColumns * cellWidth + (usedColumns + 1) * padding
        let height = rows * cellHeight + (rows + 1) * padding
        var canvas = Canvas(width: width, height: height, background: background.withAlpha(255))
        for (index, image) in images.enumerated() {
            let row = index / columns, column = index % columns
            let x = padding + column * (cellWidth + padding) + (cellWidth - image.width * scale) / 2
            let y = padding + row * (cellHeight + padding) + (cellHeight - image.height * scale) / 2
            canvas.drawImage(image, x: x, y: y, scale: scale)
        }
        let rgb = canvas.image()
        let allGray = images.allSatisfy { $0.channels <= 2 } && background.r == background.g && background.g == background.b
        guard allGray else { return rgb }
        let gray = (0..<(width * height)).map { rgb.pixels[3 * $0] }
        return RasterImage(uncheckedWidth: width, height: height, channels: 1, pixels: gray)
    }
}

/// A problem with an image or with writing it; file errors name the file.
public enum PictureError: Error, CustomStringConvertible, Equatable {
    /// The pixels or the layout requested do not make an image.
    case invalidImage(String)

    public var description: String {
        switch self {
        case .invalidImage(let problem): return "invalid image: \(problem)"
        }
    }
}

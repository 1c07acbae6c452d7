import CPNG
import CSMFormats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PNG encoding through libpng's simplified write API.
public enum PNGWriter {
    /// Writes `image` to `path` as an 8-bit PNG (gray, gray + alpha, RGB or RGBA after its
    /// channel count), through `AtomicFile`: readers never see a half-written picture.
    public static func write(_ image: RasterImage, to path: String) throws {
        guard !path.isEmpty else { throw FileError(path, "empty file name") }
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        png.width = png_uint_32(image.width)
        png.height = png_uint_32(image.height)
        switch image.channels {
        case 1: png.format = 0
        case 2: png.format = PNG_FORMAT_FLAG_ALPHA
        case 3: png.format = PNG_FORMAT_FLAG_COLOR
        default: png.format = PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA
        }
        try AtomicFile.write(to: path) { temporary in
            let ok = image.pixels.withUnsafeBytes { bytes in
                png_image_write_to_file(&png, temporary, 0, bytes.baseAddress, Int32(image.width * image.channels), nil)
            }
            guard ok != 0 else {
                let message = withUnsafeBytes(of: png.message) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                png_image_free(&png)
                throw FileError(path, "cannot write PNG: \(message.isEmpty ? "libpng failed" : message)")
            }
        }
    }
}

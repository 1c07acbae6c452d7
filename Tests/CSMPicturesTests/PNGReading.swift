import CPNG
import CSMPictures

/// Reads a PNG back through libpng's simplified API, for round-trip checks.
struct DecodedPNG {
    var width: Int
    var height: Int
    var channels: Int
    var pixels: [UInt8]
}

enum PNGReadError: Error {
    case failed(String)
}

func readPNG(_ path: String, channels: Int) throws -> DecodedPNG {
    var image = png_image()
    image.version = png_uint_32(PNG_IMAGE_VERSION)
    guard png_image_begin_read_from_file(&image, path) != 0 else {
        throw PNGReadError.failed(message(of: image))
    }
    switch channels {
    case 1: image.format = 0
    case 2: image.format = PNG_FORMAT_FLAG_ALPHA
    case 3: image.format = PNG_FORMAT_FLAG_COLOR
    default: image.format = PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA
    }
    let width = Int(image.width), height = Int(image.height)
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    let ok = pixels.withUnsafeMutableBytes { buffer in
        png_image_finish_read(&image, nil, buffer.baseAddress, Int32(width * channels), nil)
    }
    guard ok != 0 else {
        let text = message(of: image)
        png_image_free(&image)
        throw PNGReadError.failed(text)
    }
    return DecodedPNG(width: width, height: height, channels: channels, pixels: pixels)
}

private func message(of image: png_image) -> String {
    withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

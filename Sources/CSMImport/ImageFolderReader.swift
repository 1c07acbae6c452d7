import CJPEGShim
import CPNG
import CSMFormats
import Foundation

/// Reads an ImageFolder tree: one subfolder per class (classes sorted by folder name),
/// PNG (libpng) and JPEG (libjpeg) images inside. Every image must have the size of the
/// first; images are stored grey when the first image is grey and RGB otherwise (the
/// libraries convert the others).
public enum ImageFolderReader {
    /// File extensions read as images.
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// Reads every image under `root`; `progress` gets the number of images read so far.
    public static func read(_ root: String, progress: ((Int, Int) -> Void)? = nil) throws -> LabeledImages {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FileError(root, "is not a folder")
        }
        let classes = try contents(root).filter { name in
            var dir: ObjCBool = false
            return !name.hasPrefix(".") && manager.fileExists(atPath: (root as NSString).appendingPathComponent(name), isDirectory: &dir)
                && dir.boolValue
        }
        guard !classes.isEmpty else { throw FileError(root, "has no class subfolders") }
        var files: [(String, Int32)] = []
        for (index, name) in classes.enumerated() {
            let folder = (root as NSString).appendingPathComponent(name)
            for file in try contents(folder) where extensions.contains((file as NSString).pathExtension.lowercased()) {
                files.append(((folder as NSString).appendingPathComponent(file), Int32(index)))
            }
        }
        guard let first = files.first else { throw FileError(root, "holds no .png or .jpg images") }
        let probe = try decode(first.0, grey: nil)
        var images: [UInt8] = []
        images.reserveCapacity(files.count * probe.pixels.count)
        for (done, (path, _)) in files.enumerated() {
            let image = try decode(path, grey: probe.channels == 1)
            guard image.width == probe.width, image.height == probe.height else {
                throw FileError(path, "is \(image.width)×\(image.height), but \(first.0) is \(probe.width)×\(probe.height)")
            }
            images.append(contentsOf: image.pixels)
            progress?(done + 1, files.count)
        }
        return LabeledImages(height: probe.height, width: probe.width, channels: probe.channels, classNames: classes,
                             images: images, labels: files.map(\.1))
    }

    /// Decodes a PNG or JPEG file by its extension.
    static func decode(_ path: String, grey: Bool?) throws -> DecodedImage {
        let ext = (path as NSString).pathExtension.lowercased()
        return ext == "png" ? try DecodedImage.read(path, grey: grey) : try readJPEG(path, grey: grey)
    }

    /// A JPEG decoded by libjpeg to 8-bit grey or RGB.
    static func readJPEG(_ path: String, grey: Bool?) throws -> DecodedImage {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let wanted: Int32 = grey.map { $0 ? 1 : 3 } ?? 0
        let status = message.withUnsafeMutableBufferPointer {
            csm_jpeg_read(path, wanted, &pixels, &width, &height, &channels, $0.baseAddress, $0.count)
        }
        guard status == 0, let pixels else {
            throw FileError(path, "is not a readable JPEG: \(message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
        }
        defer { csm_jpeg_free(pixels) }
        let count = Int(width) * Int(height) * Int(channels)
        return DecodedImage(width: Int(width), height: Int(height), channels: Int(channels),
                        pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    private static func contents(_ folder: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw FileError(folder, "cannot be listed")
        }
    }
}

/// An image decoded to 8-bit grey or RGB, HWC (PNG through libpng, JPEG through libjpeg).
struct DecodedImage {
    var width: Int
    var height: Int
    var channels: Int
    var pixels: [UInt8]

    /// Decodes `path`; `grey` forces grey (true) or RGB (false), nil keeps the file's own.
    static func read(_ path: String, grey: Bool?) throws -> DecodedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw FileError(path, "is not a readable PNG: \(message(image))")
        }
        defer { png_image_free(&image) }
        let isGrey = grey ?? (image.format & UInt32(PNG_FORMAT_FLAG_COLOR) == 0)
        image.format = isGrey ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        let channels = isGrey ? 1 : 3
        let width = Int(image.width), height = Int(image.height)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let ok = pixels.withUnsafeMutableBytes {
            png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * channels), nil)
        }
        guard ok != 0 else { throw FileError(path, "cannot be decoded: \(message(image))") }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func message(_ image: png_image) -> String {
        var copy = image.message
        return withUnsafeBytes(of: &copy) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

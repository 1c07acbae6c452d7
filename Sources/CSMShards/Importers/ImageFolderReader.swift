import CPNG
import Foundation

/// Reads an ImageFolder tree: one subfolder per class (classes sorted by folder name),
/// PNG images inside. Every image must have the size of the first; images are stored grey
/// when the first image is grey and RGB otherwise (libpng converts the others).
public enum ImageFolderReader {
    /// File extensions read as images.
    public static let extensions: Set<String> = ["png"]

    /// Reads every image under `root`; `progress` gets the number of images read so far.
    public static func read(_ root: String, progress: ((Int, Int) -> Void)? = nil) throws -> LabeledImages {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImportError(root, "is not a folder")
        }
        let classes = try contents(root).filter { name in
            var dir: ObjCBool = false
            return !name.hasPrefix(".") && manager.fileExists(atPath: (root as NSString).appendingPathComponent(name), isDirectory: &dir)
                && dir.boolValue
        }
        guard !classes.isEmpty else { throw ImportError(root, "has no class subfolders") }
        var files: [(String, Int32)] = []
        for (index, name) in classes.enumerated() {
            let folder = (root as NSString).appendingPathComponent(name)
            for file in try contents(folder) where extensions.contains((file as NSString).pathExtension.lowercased()) {
                files.append(((folder as NSString).appendingPathComponent(file), Int32(index)))
            }
        }
        guard let first = files.first else { throw ImportError(root, "holds no .png images") }
        let probe = try PNGImage.read(first.0, grey: nil)
        var images: [UInt8] = []
        images.reserveCapacity(files.count * probe.pixels.count)
        for (done, (path, _)) in files.enumerated() {
            let image = try PNGImage.read(path, grey: probe.channels == 1)
            guard image.width == probe.width, image.height == probe.height else {
                throw ImportError(path, "is \(image.width)×\(image.height), but \(first.0) is \(probe.width)×\(probe.height)")
            }
            images.append(contentsOf: image.pixels)
            progress?(done + 1, files.count)
        }
        return LabeledImages(height: probe.height, width: probe.width, channels: probe.channels, classNames: classes,
                             images: images, labels: files.map(\.1))
    }

    private static func contents(_ folder: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw ImportError(folder, "cannot be listed")
        }
    }
}

/// A PNG decoded with libpng's simplified API to 8-bit grey or RGB.
struct PNGImage {
    var width: Int
    var height: Int
    var channels: Int
    var pixels: [UInt8]

    /// Decodes `path`; `grey` forces grey (true) or RGB (false), nil keeps the file's own.
    static func read(_ path: String, grey: Bool?) throws -> PNGImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw ImportError(path, "is not a readable PNG: \(message(image))")
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
        guard ok != 0 else { throw ImportError(path, "cannot be decoded: \(message(image))") }
        return PNGImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func message(_ image: png_image) -> String {
        var copy = image.message
        return withUnsafeBytes(of: &copy) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

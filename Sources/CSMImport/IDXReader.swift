import CSMFormats
import CZlib
import Foundation

/// Fashion-MNIST as its IDX files are distributed (and as Debian's dataset-fashion-mnist
/// installs them): `train-…` and `t10k-…` images and labels, gzipped or not.
public enum FashionMNIST {
    /// The ten classes, in label order.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                    "Ankle boot"]
    /// Where Debian's dataset-fashion-mnist puts the files.
    public static let debianFolder = "/usr/share/datasets/fashion-mnist"

    /// The images and labels files of `split` (train or test) in `folder`, the gzipped ones
    /// preferred.
    public static func files(in folder: String, split: String) throws -> (images: String, labels: String) {
        precondition(split == "train" || split == "test", "FashionMNIST: split must be train or test")
        let prefix = split == "train" ? "train" : "t10k"
        func locate(_ name: String) throws -> String {
            for candidate in [name + ".gz", name] {
                let path = (folder as NSString).appendingPathComponent(candidate)
                if FileManager.default.fileExists(atPath: path) { return path }
            }
            throw FileError((folder as NSString).appendingPathComponent(name) + ".gz",
                            "no such file (is dataset-fashion-mnist installed? try --source)")
        }
        return (try locate("\(prefix)-images-idx3-ubyte"), try locate("\(prefix)-labels-idx1-ubyte"))
    }
}

/// Reads MNIST-style IDX files (MNIST, Fashion-MNIST), gzipped or not: images with magic
/// 0x00000803 (uint8 [N, rows, cols]) and labels with magic 0x00000801 (uint8 [N]).
/// Validation is strict: a wrong magic number, a truncated file, trailing bytes, or image
/// and label counts that differ are errors naming the file.
public enum IDXReader {
    /// Magic number of an IDX file of uint8 images [N, rows, cols].
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// Magic number of an IDX file of uint8 labels [N].
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// Images [N, rows, cols, 1] and labels from a pair of IDX files, with `classNames`
    /// (every label must index into it).
    public static func read(images imagesPath: String, labels labelsPath: String, classNames: [String]) throws -> LabeledImages {
        let (rows, cols, pixels, imageCount) = try readImages(imagesPath)
        let labels = try readLabels(labelsPath)
        guard labels.count == imageCount else {
            throw FileError(labelsPath, "holds \(labels.count) labels but \(imagesPath) holds \(imageCount) images")
        }
        guard !classNames.isEmpty else { throw FileError(labelsPath, "no class names given") }
        if let bad = labels.firstIndex(where: { Int($0) >= classNames.count }) {
            throw FileError(labelsPath, "label \(labels[bad]) at index \(bad) is outside the \(classNames.count) classes")
        }
        return LabeledImages(height: rows, width: cols, channels: 1, classNames: classNames, images: pixels,
                             labels: labels.map { Int32($0) })
    }

    /// The images of an IDX images file: (rows, cols, pixels [N·rows·cols], N).
    public static func readImages(_ path: String) throws -> (rows: Int, cols: Int, pixels: [UInt8], count: Int) {
        try parseImages(try GzipFile.read(path), path: path)
    }

    /// Parses the (decompressed) bytes of an IDX images file; `path` names them in errors.
    /// The header's sizes are checked with overflow-safe arithmetic before anything is copied.
    public static func parseImages(_ bytes: [UInt8], path: String = "<bytes>") throws -> (rows: Int, cols: Int, pixels: [UInt8], count: Int) {
        let magic = try header(bytes, 0, path)
        guard magic == imagesMagic else {
            throw FileError(path, String(format: "magic number 0x%08x is not an IDX images file (0x%08x)", magic, imagesMagic))
        }
        guard bytes.count >= 16 else { throw FileError(path, "truncated header (\(bytes.count) bytes)") }
        let count = Int(try header(bytes, 4, path)), rows = Int(try header(bytes, 8, path)), cols = Int(try header(bytes, 12, path))
        guard rows > 0, cols > 0 else { throw FileError(path, "image size \(rows)×\(cols) is empty") }
        let (pixelsPerImage, overflow1) = rows.multipliedReportingOverflow(by: cols)
        let (pixelCount, overflow2) = count.multipliedReportingOverflow(by: pixelsPerImage)
        guard !overflow1, !overflow2, pixelCount <= Int.max - 16 else {
            throw FileError(path, "header claims \(count) images of \(rows)×\(cols), too many to hold")
        }
        let expected = 16 + pixelCount
        guard bytes.count >= expected else {
            throw FileError(path, "truncated: \(bytes.count) bytes, expected \(expected) for \(count) images of \(rows)×\(cols)")
        }
        guard bytes.count == expected else { throw FileError(path, "\(bytes.count - expected) unexpected bytes after the images") }
        return (rows, cols, Array(bytes[16...]), count)
    }

    /// The labels of an IDX labels file.
    public static func readLabels(_ path: String) throws -> [UInt8] {
        try parseLabels(try GzipFile.read(path), path: path)
    }

    /// Parses the (decompressed) bytes of an IDX labels file; `path` names them in errors.
    public static func parseLabels(_ bytes: [UInt8], path: String = "<bytes>") throws -> [UInt8] {
        let magic = try header(bytes, 0, path)
        guard magic == labelsMagic else {
            throw FileError(path, String(format: "magic number 0x%08x is not an IDX labels file (0x%08x)", magic, labelsMagic))
        }
        let count = Int(try header(bytes, 4, path))
        let expected = 8 + count
        guard bytes.count >= expected else { throw FileError(path, "truncated: \(bytes.count) bytes, expected \(expected) for \(count) labels") }
        guard bytes.count == expected else { throw FileError(path, "\(bytes.count - expected) unexpected bytes after the labels") }
        return Array(bytes[8...])
    }

    /// The big-endian 32-bit integer at `offset`.
    private static func header(_ bytes: [UInt8], _ offset: Int, _ path: String) throws -> UInt32 {
        guard offset >= 0, bytes.count - 4 >= offset else { throw FileError(path, "truncated header (\(bytes.count) bytes)") }
        return bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// Whole-file reads through zlib, which passes plain files through unchanged and
/// decompresses gzip files.
public enum GzipFile {
    /// The (decompressed) contents of `path`.
    public static func read(_ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw FileError(path, "no such file") }
        guard !isDirectory.boolValue else { throw FileError(path, "is a directory, not a file") }
        guard let file = gzopen(path, "rb") else { throw FileError(path, "cannot be opened: \(String(cString: strerror(errno)))") }
        var result: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let got = block.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if got < 0 {
                let message = errorMessage(file)
                gzclose_r(file)
                throw FileError(path, "cannot be decompressed: \(message)")
            }
            if got == 0 { break }
            result.append(contentsOf: block[0..<Int(got)])
        }
        var code: Int32 = 0
        _ = gzerror(file, &code)
        let closed = gzclose_r(file)
        guard code == Z_OK, closed == Z_OK else {
            throw FileError(path, code == Z_BUF_ERROR || closed == Z_BUF_ERROR
                              ? "truncated gzip stream (unexpected end of file)" : "cannot be decompressed (zlib error \(code))")
        }
        return result
    }

    private static func errorMessage(_ file: gzFile) -> String {
        var code: Int32 = 0
        guard let text = gzerror(file, &code) else { return "zlib error" }
        return String(cString: text)
    }
}

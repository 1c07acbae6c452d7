import CSMFormats
import Foundation

/// Reads the binary versions of CIFAR-10 and CIFAR-100 (32×32 RGB). A CIFAR-10 record is
/// one label byte and 3072 pixel bytes in CHW order; a CIFAR-100 record has a coarse and a
/// fine label byte before the pixels (csm uses the fine label). Pixels are returned HWC.
public enum CIFARReader {
    /// Which CIFAR layout a file has.
    public enum Variant: String, Sendable {
        case cifar10, cifar100

        /// Label bytes before each image.
        var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        /// Number of (fine) classes.
        public var numClasses: Int { self == .cifar10 ? 10 : 100 }
    }

    /// CIFAR-10's class names, in label order.
    public static let cifar10ClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    static let side = 32
    static let imageBytes = 3 * 32 * 32

    /// The standard binary file names of a split.
    public static func fileNames(_ variant: Variant, split: String) -> [String] {
        switch (variant, split) {
        case (.cifar10, "test"): return ["test_batch.bin"]
        case (.cifar10, _): return (1...5).map { "data_batch_\($0).bin" }
        case (.cifar100, "test"): return ["test.bin"]
        case (.cifar100, _): return ["train.bin"]
        }
    }

    /// The folder of `source` holding the binary files: `source` itself or the folder the
    /// official archive unpacks to (cifar-10-batches-bin, cifar-100-binary).
    public static func dataFolder(_ variant: Variant, source: String) -> String {
        let inner = (source as NSString).appendingPathComponent(variant == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary")
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: inner, isDirectory: &isDirectory) && isDirectory.boolValue ? inner : source
    }

    /// Class names from the archive's text file (batches.meta.txt or fine_label_names.txt)
    /// when present; otherwise CIFAR-10's names or "class_0"… for CIFAR-100.
    public static func classNames(_ variant: Variant, folder: String) throws -> [String] {
        let file = (folder as NSString).appendingPathComponent(variant == .cifar10 ? "batches.meta.txt" : "fine_label_names.txt")
        guard let data = FileManager.default.contents(atPath: file) else {
            return variant == .cifar10 ? cifar10ClassNames : (0..<100).map { "class_\($0)" }
        }
        let names = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard names.count == variant.numClasses else {
            throw FileError(file, "lists \(names.count) class names, expected \(variant.numClasses)")
        }
        return names
    }

    /// Reads and concatenates `files` (plain or gzipped), checking every label.
    public static func read(_ variant: Variant, files: [String], classNames: [String]) throws -> LabeledImages {
        guard classNames.count == variant.numClasses else {
            throw FileError(files.first ?? "?", "\(classNames.count) class names given, expected \(variant.numClasses)")
        }
        let record = variant.labelBytes + imageBytes
        var images: [UInt8] = []
        var labels: [Int32] = []
        for path in files {
            let bytes = try GzipFile.read(path)
            guard !bytes.isEmpty, bytes.count % record == 0 else {
                throw FileError(path, "\(bytes.count) bytes is not a whole number of \(record)-byte \(variant.rawValue) records")
            }
            let count = bytes.count / record
            images.reserveCapacity(images.count + count * imageBytes)
            let plane = side * side
            for index in 0..<count {
                let base = index * record
                let label = Int(bytes[base + variant.labelBytes - 1])
                guard label < variant.numClasses else {
                    throw FileError(path, "record \(index) has label \(label), expected 0..<\(variant.numClasses)")
                }
                labels.append(Int32(label))
                let pixels = base + variant.labelBytes
                for p in 0..<plane {
                    images.append(bytes[pixels + p])
                    images.append(bytes[pixels + plane + p])
                    images.append(bytes[pixels + 2 * plane + p])
                }
            }
        }
        return LabeledImages(height: side, width: side, channels: 3, classNames: classNames, images: images, labels: labels)
    }
}

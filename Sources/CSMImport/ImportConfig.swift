import CSMFormats
import Foundation

/// What an import read, stored as the manifest's `config` and as the shards' `generator`
/// attribute: the source kind, the split and the input files with their SHA-256 (or the
/// folder). Every setting that changes the bytes written is here. Keys are snake_case.
public struct ImportConfig: Codable, Equatable, Sendable {
    /// One input file and its SHA-256.
    public struct File: Codable, Equatable, Sendable {
        /// The file's path as given.
        public var file: String
        /// Its SHA-256, lowercase hex.
        public var sha256: String
    }

    /// `fashion-mnist`, `idx`, `cifar10`, `cifar100` or `folder`.
    public var source: String
    /// The split name of the shard files (train, test, …).
    public var split: String
    /// IDX images and labels files, with their SHA-256.
    public var images: String?
    public var labels: String?
    public var imagesSHA256: String?
    public var labelsSHA256: String?
    /// CIFAR binary files.
    public var files: [File]?
    /// The ImageFolder root.
    public var root: String?

    enum CodingKeys: String, CodingKey {
        case source, split, images, labels, files, root
        case imagesSHA256 = "images_sha256", labelsSHA256 = "labels_sha256"
    }

    /// An import of an IDX pair (`source` is `fashion-mnist` or `idx`); hashes the files.
    public static func idx(source: String, split: String, images: String, labels: String) throws -> ImportConfig {
        ImportConfig(source: source, split: split, images: images, labels: labels,
                     imagesSHA256: try FileHash.sha256(ofFile: images), labelsSHA256: try FileHash.sha256(ofFile: labels))
    }

    /// An import of CIFAR binary files; hashes them.
    public static func cifar(_ variant: CIFARReader.Variant, split: String, files: [String]) throws -> ImportConfig {
        ImportConfig(source: variant.rawValue, split: split,
                     files: try files.map { File(file: $0, sha256: try FileHash.sha256(ofFile: $0)) })
    }

    /// An import of an ImageFolder tree.
    public static func folder(root: String, split: String) -> ImportConfig {
        ImportConfig(source: "folder", split: split, root: root)
    }

    /// The configuration as the manifest stores it.
    public func json() throws -> JSONValue { try JSONValue(encoding: self) }
}

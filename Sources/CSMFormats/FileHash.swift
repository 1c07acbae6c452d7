import Crypto
import Foundation

/// The one file hash csm records and checks: SHA-256, as lowercase hex (manifests, model
/// and prototype provenance, `csm merge`).
public enum FileHash {
    /// SHA-256 of the file at `path`, read in blocks of 1 MiB.
    public static func sha256(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw FileError(path, "cannot be read for hashing") }
        defer { try? handle.close() }
        var hasher = SHA256()
        do {
            while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty {
                hasher.update(data: block)
            }
        } catch {
            throw FileError(path, "read failed while hashing: \((error as NSError).localizedDescription)")
        }
        return hex(hasher.finalize())
    }

    /// SHA-256 of `data`.
    public static func sha256(of data: Data) -> String {
        hex(SHA256.hash(data: data))
    }

    private static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `text` looks like a SHA-256 (64 hex digits).
    public static func isSHA256(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy(\.isHexDigit)
    }
}

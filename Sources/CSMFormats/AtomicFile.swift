import Foundation

/// The one way csm writes a file: the bytes go to a temporary file in the same directory
/// (`.NAME.tmp`), which is synced to the disk (fsync), renamed over `path`, and then the
/// directory is synced so that the rename itself survives a crash. A reader therefore sees
/// the old file or the complete new one, never a part, and after a crash the new file is
/// either entirely there or absent. Shards, manifests, merge copies, PNGs, model files and
/// .npy files are all written through it.
public enum AtomicFile {
    /// The temporary name `path` is written under before it is renamed into place:
    /// `.NAME.tmp` in the same directory.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp").path
    }

    /// Writes `data` to `path`.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { temporary in
            guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                throw FileError(path, "cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes `bytes` to `path`.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(Data(bytes), to: path)
    }

    /// Copies the file `source` to `path` (the copy is synced before it gets its name).
    public static func copy(_ source: String, to path: String) throws {
        try write(to: path) { temporary in
            do {
                try FileManager.default.copyItem(atPath: source, toPath: temporary)
            } catch {
                throw FileError(source, "cannot be copied to \(temporary): \(describe(error))")
            }
        }
    }

    /// Lets `body` create the temporary file at the path it is given (for writers that need
    /// a path: HDF5, libpng, a copy), then syncs it and renames it to `path`. On any error
    /// the temporary file is removed and `path` is left as it was.
    public static func write(to path: String, _ body: (String) throws -> Void) throws {
        let temporary = temporaryPath(for: path)
        unlink(temporary)   // a leftover of an interrupted write
        do {
            try body(temporary)
            try sync(temporary, naming: path)
            guard rename(temporary, path) == 0 else {
                throw FileError(path, "cannot rename into place: \(String(cString: strerror(errno)))")
            }
        } catch let error as FileError {
            unlink(temporary)
            throw error
        } catch {
            unlink(temporary)
            throw FileError(path, "cannot write: \(describe(error))")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        // Some file systems refuse fsync on directories; the rename has happened either way.
        try? sync(directory, naming: directory)
    }

    /// Flushes the file or directory `path` to the disk; errors name `naming`.
    public static func sync(_ path: String, naming: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError(naming, "cannot open for fsync: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw FileError(naming, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    private static func describe(_ error: Error) -> String {
        (error as NSError).localizedDescription.replacingOccurrences(of: "\n", with: " ")
    }
}

import Foundation

/// File-system steps that make shard and manifest writes crash-safe.
enum ShardFiles {
    /// The temporary name a file is written under before it is renamed into place:
    /// `.NAME.tmp` in the same directory.
    static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp").path
    }

    /// Flushes `path`'s data to the disk.
    static func sync(_ path: String, errorPath: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw ShardError(errorPath, "cannot open for fsync: \(String(cString: strerror(errno)))") }
        defer { _ = Foundation.close(descriptor) }
        guard fsync(descriptor) == 0 else { throw ShardError(errorPath, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Renames `temporary` to `path` after syncing it, then syncs the directory so the
    /// rename itself survives a crash.
    static func commit(_ temporary: String, to path: String) throws {
        try sync(temporary, errorPath: path)
        guard rename(temporary, path) == 0 else {
            throw ShardError(path, "cannot rename into place: \(String(cString: strerror(errno)))")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        // Some file systems refuse fsync on directories; the rename has happened either way.
        try? sync(directory, errorPath: directory)
    }
}

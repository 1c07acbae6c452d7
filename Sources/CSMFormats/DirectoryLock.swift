import Foundation

/// One writer per output directory: an advisory lock (flock) on `.csm.lock` inside it, held
/// while a command writes there and released when it ends, however it ends — the kernel drops
/// the lock of a process that exits or is killed, so a stale lock file never blocks a rerun.
/// The file is removed on a normal release.
/// A second process asking for the lock fails at once with a message naming the holder.
public final class DirectoryLock {
    /// The lock file's name inside the directory.
    public static let fileName = ".csm.lock"

    /// The directory locked.
    public let directory: String
    private let path: String
    private var descriptor: Int32 = -1

    /// Locks `directory` (created if needed) for `command` (e.g. "csm generate"), or throws
    /// a `FileError` naming the directory and the process that holds it.
    public init(directory: String, command: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileError(directory, "cannot create the output folder: \((error as NSError).localizedDescription)")
        }
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        self.path = path
        // The holder removes the file when it is done; a lock won on a file removed meanwhile
        // is not the directory's lock, so try again on the new file.
        for _ in 0..<100 {
            let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw FileError(path, "cannot open the lock file: \(String(cString: strerror(errno)))") }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                let busy = errno == EWOULDBLOCK
                let reason = String(cString: strerror(errno))
                let holder = Self.holder(descriptor)
                close(descriptor)
                guard busy else { throw FileError(path, "cannot lock: \(reason)") }
                throw FileError(directory, "in use by another csm process\(holder.map { " (\($0))" } ?? ""); "
                                           + "wait for it to finish or choose another output directory")
            }
            guard Self.isSameFile(descriptor, path) else {
                close(descriptor)
                continue
            }
            self.descriptor = descriptor
            let text = "pid \(getpid()): \(command)\n"
            _ = ftruncate(descriptor, 0)
            _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
            return
        }
        throw FileError(path, "cannot lock: the lock file keeps changing")
    }

    /// Whether `descriptor` is still the file at `path`.
    private static func isSameFile(_ descriptor: Int32, _ path: String) -> Bool {
        var opened = stat(), named = stat()
        guard fstat(descriptor, &opened) == 0, stat(path, &named) == 0 else { return false }
        return opened.st_ino == named.st_ino && opened.st_dev == named.st_dev
    }

    /// Releases the lock now and removes the lock file (the lock is released on deinit and
    /// on exit anyway; a lock file left by a killed process is harmless).
    public func release() {
        guard descriptor >= 0 else { return }
        unlink(path)
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    /// What the holder wrote into the lock file ("pid 123: csm generate"), if anything.
    private static func holder(_ descriptor: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}

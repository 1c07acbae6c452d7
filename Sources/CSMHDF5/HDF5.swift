import CHDF5
import CHDF5Shim
import CSMFormats
import Foundation

/// Small helpers around the HDF5 C library. Debian's serial HDF5 is not thread-safe, so
/// every call into it from csm runs under one process-wide lock.
package enum HDF5 {
    private static let lock = NSRecursiveLock()

    /// HDF5's exit-time clean-up is turned off before the library starts: after a failed
    /// write (a full disk) it would flush the dead file again and crash the process. csm
    /// closes every file it writes itself; the operating system releases the rest.
    private static let setUp: Void = { _ = H5dont_atexit() }()

    /// Runs `body` holding the HDF5 lock, with HDF5's automatic error printing turned off.
    package static func locked<T>(_ body: () throws -> T) rethrows -> T {
        _ = setUp
        lock.lock()
        defer { lock.unlock() }
        _ = csm_h5_silence_errors()
        return try body()
    }

    /// Runs `body` holding the HDF5 lock (the lock is recursive).
    package static func withLock<T>(_ body: () -> T) -> T {
        _ = setUp
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// The innermost message on HDF5's error stack (which is then cleared).
    package static func takeErrorMessage() -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBufferPointer { csm_h5_take_error_message($0.baseAddress, $0.count) }
        let message = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        // System errors arrive wrapped in HDF5's details; keep the system's words.
        if let range = message.range(of: "error message = '"), let end = message[range.upperBound...].firstIndex(of: "'") {
            return String(message[range.upperBound..<end])
        }
        return count > 0 && !message.isEmpty ? message : "unknown HDF5 error"
    }

    package static var defaultList: hid_t { csm_h5p_default() }
    package static var all: hid_t { csm_h5s_all() }

    /// The schema's name of an HDF5 element type ("uint8", "int64", "float32", …), or nil
    /// for a type that is neither an integer nor a float.
    package static func typeName(_ type: hid_t) -> String? {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(8 * size)"
        case H5T_FLOAT: return "float\(8 * size)"
        default: return nil
        }
    }
}

/// Closes an HDF5 identifier with the matching H5?close when released.
package final class HDF5Handle {
    package enum Kind { case file, group, dataset, dataspace, datatype, attribute, propertyList }

    package let id: hid_t
    package let kind: Kind

    package init(_ id: hid_t, _ kind: Kind) {
        self.id = id
        self.kind = kind
    }

    /// Closes now; returns false when HDF5 reports an error (for files: the final flush failed).
    @discardableResult
    package func close() -> Bool {
        HDF5.withLock { closeLocked() }
    }

    private func closeLocked() -> Bool {
        guard !closed else { return true }
        closed = true
        switch kind {
        case .file: return H5Fclose(id) >= 0
        case .group: return H5Gclose(id) >= 0
        case .dataset: return H5Dclose(id) >= 0
        case .dataspace: return H5Sclose(id) >= 0
        case .datatype: return H5Tclose(id) >= 0
        case .attribute: return H5Aclose(id) >= 0
        case .propertyList: return H5Pclose(id) >= 0
        }
    }

    private var closed = false

    deinit { close() }
}

/// Fails with a `FileError` carrying HDF5's message when `id` is negative.
@discardableResult
package func check(_ id: hid_t, _ path: String, dataset: String? = nil, _ action: String) throws -> hid_t {
    guard id >= 0 else { throw FileError(path, dataset: dataset, "\(action): \(HDF5.takeErrorMessage())") }
    return id
}

/// Fails with a `FileError` carrying HDF5's message when `status` is negative.
package func check(_ status: herr_t, _ path: String, dataset: String? = nil, _ action: String) throws {
    guard status >= 0 else { throw FileError(path, dataset: dataset, "\(action): \(HDF5.takeErrorMessage())") }
}

/// Wraps a new identifier in a handle, or fails with HDF5's message.
package func handle(_ id: hid_t, _ kind: HDF5Handle.Kind, _ path: String, dataset: String? = nil, _ action: String) throws -> HDF5Handle {
    HDF5Handle(try check(id, path, dataset: dataset, action), kind)
}

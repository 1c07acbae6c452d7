import CHDF5
import CHDF5Shim
import CSMFormats
import CSMShards
import Foundation

/// Says which datasets a truncated shard lost. HDF5 refuses to open a file shorter than the
/// end-of-file address its superblock records; a copy padded back to that length opens, and
/// a dataset whose description or chunks lie past the real end is one the cut damaged.
enum TruncationDiagnosis {
    /// The problems of a truncated shard, or nil when `path` is not a truncated HDF5 file.
    static func problems(path: String) -> [FileError]? {
        guard let size = ShardCollection.fileSize(path), let stored = storedEndOfFile(path), size < stored else { return nil }
        let summary = "truncated: the file has \(size) of its \(stored) bytes"
        let copy = NSTemporaryDirectory() + "csm-truncated-\(UUID().uuidString).h5"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        do {
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: copy))
            try handle.truncate(atOffset: UInt64(stored))
            try handle.close()
        } catch {
            return [FileError(path, summary)]
        }
        let damaged: [(ShardDataset, String)]? = HDF5.locked {
            let file = H5Fopen(copy, csm_h5f_acc_rdonly(), HDF5.defaultList)
            guard file >= 0 else {
                _ = HDF5.takeErrorMessage()
                return nil
            }
            let fileHandle = HDF5Handle(file, .file)
            let datasets = openByName(fileHandle) ?? openByAddress(fileHandle, copy: copy)
            return ShardDataset.allCases.compactMap { dataset in
                guard let handle = datasets[dataset] else { return (dataset, "its description lies past the end") }
                return damage(of: handle, size: size).map { (dataset, $0) }
            }
        }
        guard let damaged else { return [FileError(path, "\(summary); the file's HDF5 header is cut off")] }
        guard !damaged.isEmpty else {
            // No dataset lost: the cut took root attributes (named by the reader) or free space.
            do {
                _ = try ShardReader(path: copy)
                return [FileError(path, "\(summary); no dataset or attribute lies past the end")]
            } catch let error as FileError {
                let lost = error.dataset == nil ? "its root attributes lie past the end (\(error.problem))" : error.problem
                return [FileError(path, dataset: error.dataset, "\(summary); \(lost)")]
            } catch {
                return [FileError(path, summary)]
            }
        }
        return damaged.map { FileError(path, dataset: $0.0.name, "\(summary); \($0.1)") }
    }

    /// The datasets, opened through the root group's links; nil when the links are lost.
    private static func openByName(_ file: HDF5Handle) -> [ShardDataset: HDF5Handle]? {
        var result: [ShardDataset: HDF5Handle] = [:]
        for dataset in ShardDataset.allCases {
            guard H5Lexists(file.id, dataset.name, HDF5.defaultList) > 0 else {
                _ = HDF5.takeErrorMessage()
                return nil
            }
            let id = H5Dopen2(file.id, dataset.name, HDF5.defaultList)
            if id >= 0 { result[dataset] = HDF5Handle(id, .dataset) } else { _ = HDF5.takeErrorMessage() }
        }
        return result
    }

    /// The datasets found without the links (HDF5 writes the root group's links last): every
    /// object header ("OHDR") in the file, in address order, which is the order the writer
    /// creates the datasets in. The headers found must match the schema's datasets in type
    /// and rank, in order, up to the first one lost; any other arrangement finds nothing.
    private static func openByAddress(_ file: HDF5Handle, copy: String) -> [ShardDataset: HDF5Handle] {
        guard let data = FileManager.default.contents(atPath: copy) else { return [:] }
        let bytes = [UInt8](data)
        let signature: [UInt8] = Array("OHDR".utf8)
        var found: [HDF5Handle] = []
        var offset = 0
        while offset + signature.count <= bytes.count {
            defer { offset += 1 }
            guard bytes[offset] == signature[0], Array(bytes[offset..<(offset + 4)]) == signature else { continue }
            let id = H5Oopen_by_addr(file.id, haddr_t(offset))
            guard id >= 0 else {
                _ = HDF5.takeErrorMessage()
                continue
            }
            switch H5Iget_type(id) {
            case H5I_DATASET: found.append(HDF5Handle(id, .dataset))
            case H5I_GROUP: H5Gclose(id)
            case H5I_DATATYPE: H5Tclose(id)
            default: H5Oclose(id)
            }
        }
        var result: [ShardDataset: HDF5Handle] = [:]
        for (dataset, handle) in zip(ShardDataset.allCases, found) {
            let rank = dataset == .images ? 4 : dataset == .labels ? 2 : 1
            guard let found = describe(handle), found == (dataset.elementType.rawValue, rank) else { return [:] }
            result[dataset] = handle
        }
        return result
    }

    /// Element type name ("uint8", "float32", …) and rank of a dataset.
    private static func describe(_ dataset: HDF5Handle) -> (String, Int)? {
        let type = H5Dget_type(dataset.id), space = H5Dget_space(dataset.id)
        defer {
            if type >= 0 { H5Tclose(type) }
            if space >= 0 { H5Sclose(space) }
        }
        guard type >= 0, space >= 0 else {
            _ = HDF5.takeErrorMessage()
            return nil
        }
        guard let name = HDF5.typeName(type) else { return nil }
        return (name, Int(H5Sget_simple_extent_ndims(space)))
    }

    /// What the cut at `size` took from a dataset of the padded copy, or nil if nothing.
    private static func damage(of handle: HDF5Handle, size: Int) -> String? {
        let space = H5Dget_space(handle.id)
        guard space >= 0 else {
            _ = HDF5.takeErrorMessage()
            return "its shape lies past the end"
        }
        let spaceHandle = HDF5Handle(space, .dataspace)
        guard H5Sget_simple_extent_npoints(spaceHandle.id) > 0 else { return nil }   // empty: nothing stored
        var chunks: hsize_t = 0
        guard H5Dget_num_chunks(handle.id, spaceHandle.id, &chunks) >= 0 else {
            _ = HDF5.takeErrorMessage()
            return "its chunk index lies past the end"
        }
        var lost = 0
        var offset = [hsize_t](repeating: 0, count: 4)
        for index in 0..<chunks {
            var mask: UInt32 = 0, address: haddr_t = 0, bytes: hsize_t = 0
            guard H5Dget_chunk_info(handle.id, spaceHandle.id, index, &offset, &mask, &address, &bytes) >= 0 else {
                _ = HDF5.takeErrorMessage()
                return "its chunk index lies past the end"
            }
            if Int(address) + Int(bytes) > size { lost += 1 }
        }
        return lost > 0 ? "\(lost) of \(chunks) chunks lie past the end" : nil
    }

    /// The end-of-file address recorded in the HDF5 superblock at the start of `path`.
    static func storedEndOfFile(_ path: String) -> Int? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 64) else { return nil }
        let bytes = [UInt8](data)
        let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
        guard bytes.count >= 12, Array(bytes[0..<8]) == signature else { return nil }
        func address(at offset: Int, size: Int) -> Int? {
            guard (1...8).contains(size), offset + size <= bytes.count else { return nil }
            let value = (0..<size).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
            return value < UInt64(Int.max) ? Int(value) : nil
        }
        switch bytes[8] {
        case 0, 1:
            // Versions 0 and 1: sizes at 13, addresses from 24 (28 in version 1):
            // base, free-space info, end of file.
            let size = Int(bytes[13])
            let base = bytes[8] == 0 ? 24 : 28
            guard let origin = address(at: base, size: size), let end = address(at: base + 2 * size, size: size) else { return nil }
            return origin + end
        case 2, 3:
            // Versions 2 and 3: size of offsets at 9; base, extension, end of file from 12.
            let size = Int(bytes[9])
            guard let origin = address(at: 12, size: size), let end = address(at: 12 + 2 * size, size: size) else { return nil }
            return origin + end
        default:
            return nil
        }
    }
}

import CHDF5
import CHDF5Shim
import Foundation

/// Quiet questions about an HDF5 file that may be damaged (a truncated shard): each answers
/// nil or a failure case instead of throwing, and drops HDF5's message. Callers hold the
/// HDF5 lock (`HDF5.locked`).
extension HDF5 {
    /// Where a dataset's chunks lie, or which step of finding them failed.
    package enum ChunkLayout {
        /// The dataset holds no elements (nothing is stored).
        case empty
        /// The dataspace (its shape) cannot be read.
        case shapeUnreadable
        /// The chunk index cannot be read (or the dataset is not chunked).
        case indexUnreadable
        /// The chunks' byte ranges in storage order.
        case chunks([Range<Int>])
    }

    /// Where `dataset`'s chunks lie in the file.
    package static func chunkLayout(_ dataset: HDF5Handle) -> ChunkLayout {
        let space = H5Dget_space(dataset.id)
        guard space >= 0 else {
            _ = takeErrorMessage()
            return .shapeUnreadable
        }
        let spaceHandle = HDF5Handle(space, .dataspace)
        guard H5Sget_simple_extent_npoints(spaceHandle.id) > 0 else { return .empty }
        var count: hsize_t = 0
        guard H5Dget_num_chunks(dataset.id, spaceHandle.id, &count) >= 0 else {
            _ = takeErrorMessage()
            return .indexUnreadable
        }
        var ranges: [Range<Int>] = []
        var offset = [hsize_t](repeating: 0, count: 32)
        for index in 0..<count {
            var mask: UInt32 = 0, address: haddr_t = 0, bytes: hsize_t = 0
            guard H5Dget_chunk_info(dataset.id, spaceHandle.id, index, &offset, &mask, &address, &bytes) >= 0,
                  let start = Int(exactly: address), let length = Int(exactly: bytes), start <= Int.max - length else {
                _ = takeErrorMessage()
                return .indexUnreadable
            }
            ranges.append(start..<(start + length))
        }
        return .chunks(ranges)
    }

    /// The file at `path` opened read-only, or nil.
    package static func probeFile(_ path: String) -> HDF5Handle? {
        let file = H5Fopen(path, csm_h5f_acc_rdonly(), defaultList)
        guard file >= 0 else {
            _ = takeErrorMessage()
            return nil
        }
        return HDF5Handle(file, .file)
    }

    /// Dataset `name` of `file` opened through its link, or nil.
    package static func probeDataset(_ file: HDF5Handle, _ name: String) -> HDF5Handle? {
        let id = H5Dopen2(file.id, name, defaultList)
        guard id >= 0 else {
            _ = takeErrorMessage()
            return nil
        }
        return HDF5Handle(id, .dataset)
    }

    /// Every dataset whose object header ("OHDR") is found in `bytes` (the file's content),
    /// in address order, opened without the links that name them.
    package static func datasetsByHeaderAddress(_ file: HDF5Handle, bytes: [UInt8]) -> [HDF5Handle] {
        let signature: [UInt8] = Array("OHDR".utf8)
        var found: [HDF5Handle] = []
        var offset = 0
        while offset + signature.count <= bytes.count {
            defer { offset += 1 }
            guard bytes[offset] == signature[0], Array(bytes[offset..<(offset + 4)]) == signature else { continue }
            let id = H5Oopen_by_addr(file.id, haddr_t(offset))
            guard id >= 0 else {
                _ = takeErrorMessage()
                continue
            }
            switch H5Iget_type(id) {
            case H5I_DATASET: found.append(HDF5Handle(id, .dataset))
            case H5I_GROUP: H5Gclose(id)
            case H5I_DATATYPE: H5Tclose(id)
            default: H5Oclose(id)
            }
        }
        return found
    }

    /// Element type name ("uint8", "float32", …) and rank of a dataset, or nil.
    package static func probeTypeAndRank(_ dataset: HDF5Handle) -> (type: String, rank: Int)? {
        let type = H5Dget_type(dataset.id), space = H5Dget_space(dataset.id)
        defer {
            if type >= 0 { H5Tclose(type) }
            if space >= 0 { H5Sclose(space) }
        }
        guard type >= 0, space >= 0 else {
            _ = takeErrorMessage()
            return nil
        }
        guard let name = typeName(type) else { return nil }
        return (name, Int(H5Sget_simple_extent_ndims(space)))
    }

    /// The end-of-file address recorded in the HDF5 superblock at the start of `path`, or
    /// nil when `path` does not start with an HDF5 superblock csm can read (versions 0–3).
    package static func storedEndOfFile(_ path: String) -> Int? {
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

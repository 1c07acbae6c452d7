import CHDF5
import CHDF5Shim
import CSMFormats
import Foundation

/// Creating, writing and reading the pieces of csm's HDF5 files (shards, attribution
/// features, attributions; docs/formats/): reproducible files, scalar root attributes,
/// whole datasets and rows of them.
/// Callers hold the HDF5 lock (`HDF5.locked`).
extension HDF5 {
    // MARK: Files

    /// Creates (truncating) the file `temporary` so that identical content gives identical
    /// bytes: no object timestamps and the file format pinned to HDF5 1.8's. `path` names
    /// the file in errors. Returns the file and its root group.
    package static func createReproducibleFile(_ temporary: String, path: String) throws -> (file: HDF5Handle, root: HDF5Handle) {
        let creation = try handle(H5Pcreate(csm_h5p_file_create()), .propertyList, path, "cannot create file properties")
        // The root group carries no access/modification times.
        try check(H5Pset_obj_track_times(creation.id, false), path, "cannot turn off time tracking")
        let access = try handle(H5Pcreate(csm_h5p_file_access()), .propertyList, path, "cannot create file-access properties")
        try check(H5Pset_libver_bounds(access.id, H5F_LIBVER_V18, H5F_LIBVER_V18), path, "cannot pin the file format")
        let file = try handle(H5Fcreate(temporary, csm_h5f_acc_trunc(), creation.id, access.id), .file, path, "cannot create")
        let root = try handle(H5Gopen2(file.id, "/", HDF5.defaultList), .group, path, "cannot open the root group")
        return (file, root)
    }

    /// Opens an existing HDF5 file read-only, refusing a missing path, a directory (named as not
    /// `kind`, what the caller expects) or a file that is not HDF5.
    package static func openReadOnly(_ path: String, expecting kind: String = "an HDF5 file") throws -> (file: HDF5Handle, root: HDF5Handle) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw FileError(path, "no such file") }
        guard !isDirectory.boolValue else { throw FileError(path, "is a directory, not \(kind)") }
        guard H5Fis_hdf5(path) > 0 else {
            _ = HDF5.takeErrorMessage()
            throw FileError(path, "not an HDF5 file")
        }
        let file = try handle(H5Fopen(path, csm_h5f_acc_rdonly(), HDF5.defaultList), .file, path, "cannot open")
        let root = try handle(H5Gopen2(file.id, "/", HDF5.defaultList), .group, path, "cannot open the root group")
        return (file, root)
    }

    // MARK: Datasets

    /// Writes `values` as dataset `name` of shape `dims`. With `chunkRows` > 0 (and rows to
    /// chunk) the dataset is chunked along its first axis with Fletcher-32, and with shuffle
    /// and deflate at `deflateLevel` when that is above 0; otherwise it is contiguous.
    package static func writeDataset<T>(_ file: HDF5Handle, _ name: String, _ values: [T], dims: [Int], type: HDF5ElementType,
                                        chunkRows: Int, deflateLevel: Int, _ path: String) throws {
        precondition(MemoryLayout<T>.size == type.size && values.count == dims.reduce(1, *), "HDF5.writeDataset: \(name) does not match its shape")
        let extent = dims.map { hsize_t($0) }
        let space = try handle(H5Screate_simple(Int32(extent.count), extent, nil), .dataspace, path, dataset: name, "cannot create dataspace")
        let properties = try handle(H5Pcreate(csm_h5p_dataset_create()), .propertyList, path, dataset: name, "cannot create properties")
        try check(H5Pset_obj_track_times(properties.id, false), path, dataset: name, "cannot turn off time tracking")
        // An empty dataset cannot be chunked along a zero-length axis; it stays contiguous.
        if chunkRows > 0, let rows = dims.first, rows > 0 {
            let chunk = ([min(rows, chunkRows)] + dims.dropFirst()).map { hsize_t($0) }
            try check(H5Pset_chunk(properties.id, Int32(chunk.count), chunk), path, dataset: name, "cannot set chunking")
            if deflateLevel > 0 {
                try check(H5Pset_shuffle(properties.id), path, dataset: name, "cannot add the shuffle filter")
                try check(H5Pset_deflate(properties.id, UInt32(deflateLevel)), path, dataset: name, "cannot add the deflate filter")
            }
            try check(H5Pset_fletcher32(properties.id), path, dataset: name, "cannot add the Fletcher-32 filter")
        }
        let id = try handle(H5Dcreate2(file.id, name, type.fileType, space.id, HDF5.defaultList, properties.id, HDF5.defaultList),
                            .dataset, path, dataset: name, "cannot create")
        if !values.isEmpty {
            try values.withUnsafeBufferPointer { buffer in
                try check(H5Dwrite(id.id, type.memoryType, HDF5.all, HDF5.all, HDF5.defaultList, buffer.baseAddress),
                          path, dataset: name, "cannot write")
            }
        }
        guard id.close() else { throw FileError(path, dataset: name, "cannot close: \(HDF5.takeErrorMessage())") }
    }

    /// Whether `file` has a link (a dataset or group) called `name`.
    package static func hasLink(_ file: HDF5Handle, _ name: String) -> Bool {
        let exists = H5Lexists(file.id, name, HDF5.defaultList)
        if exists < 0 { _ = HDF5.takeErrorMessage() }
        return exists > 0
    }

    /// The shape of dataset `name`, checked to be of element type `type`, of rank `rank`
    /// (any rank up to 8 when nil), and no larger than the file can hold.
    package static func datasetShape(_ file: HDF5Handle, _ name: String, type: HDF5ElementType, rank: Int?, _ path: String) throws -> [Int] {
        guard hasLink(file, name) else { throw FileError(path, dataset: name, "missing dataset") }
        let id = try handle(H5Dopen2(file.id, name, HDF5.defaultList), .dataset, path, dataset: name, "cannot open")
        let fileType = try handle(H5Dget_type(id.id), .datatype, path, dataset: name, "cannot read the type")
        let actual = describe(fileType.id)
        guard actual == type.rawValue else { throw FileError(path, dataset: name, "is \(actual), expected \(type.rawValue)") }
        let space = try handle(H5Dget_space(id.id), .dataspace, path, dataset: name, "cannot read the shape")
        let actualRank = Int(H5Sget_simple_extent_ndims(space.id))
        if let rank {
            guard actualRank == rank else { throw FileError(path, dataset: name, "has rank \(actualRank), expected \(rank)") }
        } else {
            guard (0...8).contains(actualRank) else { throw FileError(path, dataset: name, "has an unreadable shape") }
        }
        var dims = [hsize_t](repeating: 0, count: actualRank)
        try check(H5Sget_simple_extent_dims(space.id, &dims, nil), path, dataset: name, "cannot read the shape")
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        return try checkedShape(dims, elementSize: type.size, limit: plausibleBytes(fileSize: size), path, dataset: name)
    }

    /// Deflate expands data at most 1032-fold, so no dataset of a file of `fileSize` bytes
    /// holds more than this many bytes (plus slack for tiny files); larger shapes are refused
    /// before any buffer is made.
    package static func plausibleBytes(fileSize: Int) -> Int {
        let (product, overflow) = fileSize.multipliedReportingOverflow(by: 1032)
        return overflow ? Int.max : product.addingReportingOverflow(1 << 20).overflow ? Int.max : product + (1 << 20)
    }

    /// `dims` as Ints, checked with overflow-safe arithmetic: every dimension and the
    /// dataset's byte count fit in an Int and stay within `limit`.
    static func checkedShape(_ dims: [hsize_t], elementSize: Int, limit: Int, _ path: String, dataset: String) throws -> [Int] {
        var bytes = elementSize
        var shape: [Int] = []
        for dim in dims {
            guard let value = Int(exactly: dim) else { throw FileError(path, dataset: dataset, "has an absurd dimension \(dim)") }
            let (product, overflow) = bytes.multipliedReportingOverflow(by: value)
            guard !overflow else { throw FileError(path, dataset: dataset, "has shape \(dims) whose size overflows") }
            shape.append(value)
            bytes = product
        }
        guard bytes <= limit else {
            throw FileError(path, dataset: dataset, "has shape \(shape): \(bytes) bytes, more than the file can hold")
        }
        return shape
    }

    /// Where dataset `name`'s stored chunks lie in the file, as byte ranges in storage
    /// order; empty for a dataset that is not chunked (csm writes empty datasets contiguous).
    package static func storageRanges(_ file: HDF5Handle, _ name: String, _ path: String) throws -> [Range<Int>] {
        let id = try handle(H5Dopen2(file.id, name, HDF5.defaultList), .dataset, path, dataset: name, "cannot open")
        switch chunkLayout(id) {
        case .shapeUnreadable: throw FileError(path, dataset: name, "cannot read the shape: \(HDF5.takeErrorMessage())")
        case .empty, .indexUnreadable: return []
        case .chunks(let ranges): return ranges
        }
    }

    /// Rows `rows` of dataset `name` (first axis; `shape` from `datasetShape`), in row-major order.
    package static func readRows<T>(_ file: HDF5Handle, _ name: String, shape: [Int], rows: Range<Int>, type: HDF5ElementType,
                                    _ path: String) throws -> [T] {
        precondition(MemoryLayout<T>.size == type.size, "HDF5.readRows: \(T.self) does not match \(name)")
        guard rows.lowerBound >= 0, rows.upperBound <= shape[0] else {
            throw FileError(path, dataset: name, "rows \(rows.lowerBound)..<\(rows.upperBound) lie outside 0..<\(shape[0])")
        }
        let rowShape = Array(shape.dropFirst())
        let total = rows.count * rowShape.reduce(1, *)
        guard total > 0 else { return [] }
        let id = try handle(H5Dopen2(file.id, name, HDF5.defaultList), .dataset, path, dataset: name, "cannot open")
        let fileSpace = try handle(H5Dget_space(id.id), .dataspace, path, dataset: name, "cannot read the shape")
        let start = ([rows.lowerBound] + rowShape.map { _ in 0 }).map { hsize_t($0) }
        let extent = ([rows.count] + rowShape).map { hsize_t($0) }
        try check(H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, start, nil, extent, nil), path, dataset: name, "cannot select rows")
        let memorySpace = try handle(H5Screate_simple(Int32(extent.count), extent, nil), .dataspace, path, dataset: name,
                                     "cannot create dataspace")
        return try [T](unsafeUninitializedCapacity: total) { buffer, initialized in
            try check(H5Dread(id.id, type.memoryType, memorySpace.id, fileSpace.id, HDF5.defaultList, buffer.baseAddress),
                      path, dataset: name, "cannot read")
            initialized = total
        }
    }

    // MARK: Attributes

    private static func writeAttribute(_ object: HDF5Handle, _ name: String, _ value: UnsafeRawPointer, fileType: hid_t, memoryType: hid_t,
                                       _ path: String) throws {
        let space = try handle(H5Screate(H5S_SCALAR), .dataspace, path, dataset: name, "cannot create dataspace")
        let attribute = try handle(H5Acreate2(object.id, name, fileType, space.id, HDF5.defaultList, HDF5.defaultList),
                                   .attribute, path, dataset: name, "cannot create attribute")
        try check(H5Awrite(attribute.id, memoryType, value), path, dataset: name, "cannot write attribute")
    }

    /// A scalar 64-bit integer attribute.
    package static func writeInteger(_ object: HDF5Handle, _ name: String, _ value: Int64, _ path: String) throws {
        var value = value
        try writeAttribute(object, name, &value, fileType: HDF5ElementType.int64.fileType, memoryType: HDF5ElementType.int64.memoryType, path)
    }

    /// A scalar float64 attribute.
    package static func writeDouble(_ object: HDF5Handle, _ name: String, _ value: Double, _ path: String) throws {
        var value = value
        try writeAttribute(object, name, &value, fileType: csm_h5t_ieee_f64le(), memoryType: csm_h5t_native_double(), path)
    }

    /// A scalar variable-length UTF-8 string attribute (h5py reads it as `str`).
    package static func writeString(_ object: HDF5Handle, _ name: String, _ value: String, _ path: String) throws {
        let type = try handle(csm_h5t_create_utf8_string(), .datatype, path, dataset: name, "cannot create string type")
        try value.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            try writeAttribute(object, name, &pointer, fileType: type.id, memoryType: type.id, path)
        }
    }

    /// The schema name of an HDF5 element type ("float32", "int64", …) or a description of it.
    package static func describe(_ type: hid_t) -> String {
        if let name = HDF5.typeName(type) { return name }
        return H5Tget_class(type) == H5T_STRING ? "a string" : "of an unsupported HDF5 type"
    }

    /// Whether `object` carries an attribute called `name`.
    package static func hasAttribute(_ object: HDF5Handle, _ name: String) -> Bool {
        let exists = H5Aexists(object.id, name)
        if exists < 0 { _ = HDF5.takeErrorMessage() }
        return exists > 0
    }

    package static func openAttribute(_ root: HDF5Handle, _ name: String, _ path: String) throws -> HDF5Handle {
        guard hasAttribute(root, name) else { throw FileError(path, dataset: name, "missing attribute") }
        let attribute = try handle(H5Aopen(root.id, name, HDF5.defaultList), .attribute, path, dataset: name, "cannot open attribute")
        let space = try handle(H5Aget_space(attribute.id), .dataspace, path, dataset: name, "cannot read the attribute's shape")
        guard H5Sget_simple_extent_npoints(space.id) == 1 else { throw FileError(path, dataset: name, "is not a single value") }
        return attribute
    }

    package static func readString(_ root: HDF5Handle, _ name: String, _ path: String) throws -> String {
        let attribute = try openAttribute(root, name, path)
        let type = try handle(H5Aget_type(attribute.id), .datatype, path, dataset: name, "cannot read the attribute's type")
        guard H5Tget_class(type.id) == H5T_STRING else { throw FileError(path, dataset: name, "is not a string") }
        if H5Tis_variable_str(type.id) > 0 {
            var problem = [CChar](repeating: 0, count: 256)
            guard csm_h5a_check_variable_strings(attribute.id, &problem, problem.count) == 0 else {
                throw FileError(path, dataset: name, String(cString: problem))
            }
            var pointer: UnsafeMutablePointer<CChar>?
            try check(H5Aread(attribute.id, type.id, &pointer), path, dataset: name, "cannot read attribute")
            guard let pointer else { return "" }
            defer { H5free_memory(pointer) }
            return String(cString: pointer)
        }
        let size = H5Tget_size(type.id)
        guard size > 0, size < 1 << 24 else { throw FileError(path, dataset: name, "has an implausible string size") }
        var bytes = [UInt8](repeating: 0, count: size)
        try check(H5Aread(attribute.id, type.id, &bytes), path, dataset: name, "cannot read attribute")
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    package static func readInteger(_ root: HDF5Handle, _ name: String, _ path: String) throws -> Int {
        let attribute = try openAttribute(root, name, path)
        let type = try handle(H5Aget_type(attribute.id), .datatype, path, dataset: name, "cannot read the attribute's type")
        guard H5Tget_class(type.id) == H5T_INTEGER else { throw FileError(path, dataset: name, "is not an integer") }
        var value: Int64 = 0
        try check(H5Aread(attribute.id, csm_h5t_native_int64(), &value), path, dataset: name, "cannot read attribute")
        return Int(value)
    }

    package static func readDouble(_ root: HDF5Handle, _ name: String, _ path: String) throws -> Double {
        let attribute = try openAttribute(root, name, path)
        let type = try handle(H5Aget_type(attribute.id), .datatype, path, dataset: name, "cannot read the attribute's type")
        let typeClass = H5Tget_class(type.id)
        guard typeClass == H5T_FLOAT || typeClass == H5T_INTEGER else { throw FileError(path, dataset: name, "is not a number") }
        var value: Double = 0
        try check(H5Aread(attribute.id, csm_h5t_native_double(), &value), path, dataset: name, "cannot read attribute")
        return value
    }
}

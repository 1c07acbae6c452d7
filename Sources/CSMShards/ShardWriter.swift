import CHDF5
import CHDF5Shim
import CSMFormats
import Foundation

/// Writes `csm-shard/1` HDF5 files (SPEC §4.3).
///
/// Every dataset is chunked along the sample axis and stored with shuffle, deflate and
/// HDF5's Fletcher-32 checksum, so that a flipped byte is caught on read. The file is
/// written through `AtomicFile` (a temporary `.NAME.h5.tmp` beside it, synced, renamed
/// into place only when complete). Identical input gives byte-identical files: no object
/// timestamps, fixed object order, and the file format pinned to HDF5 1.8's.
public struct ShardWriter: Sendable {
    /// zlib level, 0–9.
    public var deflateLevel: Int
    /// Approximate bytes per chunk (at least one sample per chunk).
    public var chunkBytes: Int

    public init(deflateLevel: Int = 4, chunkBytes: Int = 1 << 16) {
        self.deflateLevel = deflateLevel
        self.chunkBytes = chunkBytes
    }

    /// The temporary name `path` is written under before it is renamed into place.
    public static func temporaryPath(for path: String) -> String { AtomicFile.temporaryPath(for: path) }

    /// Writes `samples` with `metadata` to `path`, replacing any file there.
    public func write(_ samples: ShardSamples, metadata: ShardMetadata, to path: String) throws {
        try metadata.validate(path: path)
        try samples.validate(path: path)
        guard samples.numClasses == metadata.numClasses else {
            throw FileError(path, dataset: "labels", "\(samples.numClasses) classes but class_names has \(metadata.numClasses)")
        }
        guard (0...9).contains(deflateLevel), chunkBytes > 0 else {
            throw FileError(path, "deflate level must be 0–9 and chunk size positive")
        }
        try AtomicFile.write(to: path) { temporary in
            try HDF5.locked { try writeFile(samples, metadata: metadata, temporary: temporary, path: path) }
        }
    }

    private func writeFile(_ samples: ShardSamples, metadata: ShardMetadata, temporary: String, path: String) throws {
        let creation = try handle(H5Pcreate(csm_h5p_file_create()), .propertyList, path, "cannot create file properties")
        // The root group carries no access/modification times.
        try check(H5Pset_obj_track_times(creation.id, false), path, "cannot turn off time tracking")
        let access = try handle(H5Pcreate(csm_h5p_file_access()), .propertyList, path, "cannot create file-access properties")
        try check(H5Pset_libver_bounds(access.id, H5F_LIBVER_V18, H5F_LIBVER_V18), path, "cannot pin the file format")
        let file = try handle(H5Fcreate(temporary, csm_h5f_acc_trunc(), creation.id, access.id), .file, path, "cannot create")
        let root = try handle(H5Gopen2(file.id, "/", HDF5.defaultList), .group, path, "cannot open the root group")

        try writeString(root, "schema", ShardMetadata.schema, path)
        try writeString(root, "kind", metadata.kind.rawValue, path)
        try writeScalar(root, "num_classes", Int64(metadata.numClasses), .int64, path)
        try writeString(root, "class_names", metadata.classNamesJSON, path)
        var sharpness = metadata.sharpness
        try writeAttribute(root, "sharpness", &sharpness, fileType: csm_h5t_ieee_f64le(), memoryType: csm_h5t_native_double(), path)
        try writeString(root, "generator", metadata.generator, path)
        try writeString(root, "annotator", metadata.annotator, path)
        try writeScalar(root, "shard_index", Int64(metadata.shardIndex), .int64, path)
        try writeScalar(root, "num_shards", Int64(metadata.numShards), .int64, path)
        try writeString(root, "created_by", metadata.createdBy, path)

        let s = samples
        for dataset in ShardDataset.allCases {
            let rowShape = dataset.rowShape(height: s.height, width: s.width, channels: s.channels, classes: s.numClasses)
            switch dataset {
            case .images: try writeDataset(file, dataset, s.images, count: s.count, rowShape: rowShape, path)
            case .labels: try writeDataset(file, dataset, s.labels, count: s.count, rowShape: rowShape, path)
            case .classA: try writeDataset(file, dataset, s.classA, count: s.count, rowShape: rowShape, path)
            case .classB: try writeDataset(file, dataset, s.classB, count: s.count, rowShape: rowShape, path)
            case .lambdaGen: try writeDataset(file, dataset, s.lambdaGen, count: s.count, rowShape: rowShape, path)
            case .lambdaProj: try writeDataset(file, dataset, s.lambdaProj, count: s.count, rowShape: rowShape, path)
            case .probA: try writeDataset(file, dataset, s.probA, count: s.count, rowShape: rowShape, path)
            case .probB: try writeDataset(file, dataset, s.probB, count: s.count, rowShape: rowShape, path)
            case .consistent: try writeDataset(file, dataset, s.consistent, count: s.count, rowShape: rowShape, path)
            case .group: try writeDataset(file, dataset, s.group, count: s.count, rowShape: rowShape, path)
            case .seed: try writeDataset(file, dataset, s.seed, count: s.count, rowShape: rowShape, path)
            }
        }
        root.close()
        guard file.close() else { throw FileError(path, "cannot finish writing: \(HDF5.takeErrorMessage())") }
    }

    private func writeDataset<T>(_ file: HDF5Handle, _ dataset: ShardDataset, _ values: [T], count: Int, rowShape: [Int], _ path: String) throws {
        let name = dataset.name
        let dims = ([count] + rowShape).map { hsize_t($0) }
        let space = try handle(H5Screate_simple(Int32(dims.count), dims, nil), .dataspace, path, dataset: name, "cannot create dataspace")
        let properties = try handle(H5Pcreate(csm_h5p_dataset_create()), .propertyList, path, dataset: name, "cannot create properties")
        try check(H5Pset_obj_track_times(properties.id, false), path, dataset: name, "cannot turn off time tracking")
        // An empty dataset cannot be chunked along a zero-length axis; it stays contiguous.
        if count > 0 {
            let rowBytes = max(1, rowShape.reduce(dataset.elementType.size, *))
            let rows = min(count, max(1, chunkBytes / rowBytes))
            let chunk = ([rows] + rowShape).map { hsize_t($0) }
            try check(H5Pset_chunk(properties.id, Int32(chunk.count), chunk), path, dataset: name, "cannot set chunking")
            try check(H5Pset_shuffle(properties.id), path, dataset: name, "cannot add the shuffle filter")
            try check(H5Pset_deflate(properties.id, UInt32(deflateLevel)), path, dataset: name, "cannot add the deflate filter")
            try check(H5Pset_fletcher32(properties.id), path, dataset: name, "cannot add the Fletcher-32 filter")
        }
        let type = dataset.elementType
        let id = try handle(H5Dcreate2(file.id, name, type.fileType, space.id, HDF5.defaultList, properties.id, HDF5.defaultList),
                            .dataset, path, dataset: name, "cannot create")
        if count > 0 {
            try values.withUnsafeBufferPointer { buffer in
                try check(H5Dwrite(id.id, type.memoryType, HDF5.all, HDF5.all, HDF5.defaultList, buffer.baseAddress),
                          path, dataset: name, "cannot write")
            }
        }
        guard id.close() else { throw FileError(path, dataset: name, "cannot close: \(HDF5.takeErrorMessage())") }
    }

    private func writeAttribute(_ object: HDF5Handle, _ name: String, _ value: UnsafeRawPointer, fileType: hid_t, memoryType: hid_t,
                                _ path: String) throws {
        let space = try handle(H5Screate(H5S_SCALAR), .dataspace, path, dataset: name, "cannot create dataspace")
        let attribute = try handle(H5Acreate2(object.id, name, fileType, space.id, HDF5.defaultList, HDF5.defaultList),
                                   .attribute, path, dataset: name, "cannot create attribute")
        try check(H5Awrite(attribute.id, memoryType, value), path, dataset: name, "cannot write attribute")
    }

    private func writeScalar(_ object: HDF5Handle, _ name: String, _ value: Int64, _ type: ShardElementType, _ path: String) throws {
        var value = value
        try writeAttribute(object, name, &value, fileType: type.fileType, memoryType: type.memoryType, path)
    }

    /// A scalar variable-length UTF-8 string attribute (h5py reads it as `str`).
    private func writeString(_ object: HDF5Handle, _ name: String, _ value: String, _ path: String) throws {
        let type = try handle(csm_h5t_create_utf8_string(), .datatype, path, dataset: name, "cannot create string type")
        try value.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            try writeAttribute(object, name, &pointer, fileType: type.id, memoryType: type.id, path)
        }
    }
}

import CSMFormats
import CSMHDF5
import CSMShards
import Foundation

/// Says which datasets a truncated shard lost. HDF5 refuses to open a file shorter than the
/// end-of-file address its superblock records; a copy padded back to that length opens, and
/// a dataset whose description or chunks lie past the real end is one the cut damaged.
enum TruncationDiagnosis {
    /// The problems of a truncated shard, or nil when `path` is not a truncated HDF5 file.
    static func problems(path: String) -> [FileError]? {
        guard let size = ShardCollection.fileSize(path), let stored = HDF5.storedEndOfFile(path), size < stored else { return nil }
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
            guard let file = HDF5.probeFile(copy) else { return nil }
            let datasets = openByName(file) ?? openByAddress(file, copy: copy)
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
            guard HDF5.hasLink(file, dataset.name) else { return nil }
            result[dataset] = HDF5.probeDataset(file, dataset.name)
        }
        return result
    }

    /// The datasets found without the links (HDF5 writes the root group's links last): every
    /// object header in the file, in address order, which is the order the writer creates
    /// the datasets in. The headers found must match the schema's datasets in type and rank,
    /// in order, up to the first one lost; any other arrangement finds nothing.
    private static func openByAddress(_ file: HDF5Handle, copy: String) -> [ShardDataset: HDF5Handle] {
        guard let data = FileManager.default.contents(atPath: copy) else { return [:] }
        let found = HDF5.datasetsByHeaderAddress(file, bytes: [UInt8](data))
        var result: [ShardDataset: HDF5Handle] = [:]
        for (dataset, handle) in zip(ShardDataset.allCases, found) {
            let rank = dataset == .images ? 4 : dataset == .labels ? 2 : 1
            guard let found = HDF5.probeTypeAndRank(handle), found == (dataset.elementType.rawValue, rank) else { return [:] }
            result[dataset] = handle
        }
        return result
    }

    /// What the cut at `size` took from a dataset of the padded copy, or nil if nothing.
    private static func damage(of handle: HDF5Handle, size: Int) -> String? {
        switch HDF5.chunkLayout(handle) {
        case .empty: return nil
        case .shapeUnreadable: return "its shape lies past the end"
        case .indexUnreadable: return "its chunk index lies past the end"
        case .chunks(let chunks):
            let lost = chunks.filter { $0.upperBound > size }.count
            return lost > 0 ? "\(lost) of \(chunks.count) chunks lie past the end" : nil
        }
    }
}

import CHDF5
import CHDF5Shim
import Foundation

/// The shard files behind one path: a `manifest.json`, a directory holding one (or, without
/// a manifest, the `.h5` shards in it), or a single shard file. Lists what else lies in the
/// directory, so that `verify()` can report shards the manifest does not know about and
/// the leftovers of an interrupted run.
public struct ShardCollection: Sendable {
    /// Where the list of shards came from.
    public enum Source: String, Codable, Sendable {
        /// A `manifest.json` (given directly or found in the directory).
        case manifest
        /// The `.h5` files of a directory without a manifest.
        case directory
        /// One shard file.
        case file
    }

    /// One shard file and, with a manifest, its entry there.
    public struct Member: Sendable {
        /// Path of the shard file.
        public let path: String
        /// The manifest's entry for the file, if the collection has a manifest.
        public let entry: Manifest.Shard?
    }

    /// The path the collection was opened from.
    public let path: String
    public let source: Source
    /// The manifest, for `.manifest` collections.
    public let manifest: Manifest?
    /// Where the manifest lies, for `.manifest` collections.
    public let manifestPath: String?
    /// The shards, in manifest order (shard index) or by file name.
    public let members: [Member]
    /// `.h5` files in the manifest's directory that the manifest does not list.
    public let unlistedFiles: [String]
    /// Temporary files (`.NAME.tmp`) left by an interrupted write; never read.
    public let temporaryFiles: [String]

    /// Paths of the shard files, in order.
    public var shardPaths: [String] { members.map(\.path) }

    /// Opens `path`: a manifest (any `.json` file), a directory, or a shard (checked
    /// against its entry in a `manifest.json` beside it, if one lists it).
    /// Throws a `ShardError` when the path is missing, the manifest is unreadable, or a
    /// directory holds neither a manifest nor any shard.
    public init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ShardError(path, "no such file or directory")
        }
        let directory: String
        if isDirectory.boolValue {
            directory = path
            let candidate = (path as NSString).appendingPathComponent("manifest.json")
            manifestPath = FileManager.default.fileExists(atPath: candidate) ? candidate : nil
        } else if path.hasSuffix(".json") {
            directory = (path as NSString).deletingLastPathComponent
            manifestPath = path
        } else {
            // A shard beside a manifest that lists it is checked against its entry.
            let directory = (path as NSString).deletingLastPathComponent
            let sibling = ((directory.isEmpty ? "." : directory) as NSString).appendingPathComponent("manifest.json")
            let name = (path as NSString).lastPathComponent
            let entry = (try? Manifest.read(from: sibling))?.shards.first { $0.file == name }
            self.source = .file
            manifest = nil
            manifestPath = nil
            members = [Member(path: path, entry: entry)]
            unlistedFiles = []
            temporaryFiles = []
            return
        }

        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory).sorted()
        } catch {
            throw ShardError(directory, "cannot list the directory")
        }
        func inDirectory(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        temporaryFiles = names.filter { $0.hasPrefix(".") && $0.hasSuffix(".tmp") }.map(inDirectory)
        let shardFiles = names.filter { !$0.hasPrefix(".") && $0.hasSuffix(".h5") }

        if let manifestPath {
            let manifest = try Manifest.read(from: manifestPath)
            self.source = .manifest
            self.manifest = manifest
            let ordered = manifest.shards.enumerated().sorted {
                ($0.element.shardIndex, $0.offset) < ($1.element.shardIndex, $1.offset)
            }.map(\.element)
            members = ordered.map { Member(path: inDirectory($0.file), entry: $0) }
            let listed = Set(manifest.shards.map { URL(fileURLWithPath: inDirectory($0.file)).standardizedFileURL.path })
            unlistedFiles = shardFiles.map(inDirectory).filter { !listed.contains(URL(fileURLWithPath: $0).standardizedFileURL.path) }
        } else {
            guard !shardFiles.isEmpty else { throw ShardError(path, "holds no manifest.json and no .h5 shards") }
            self.source = .directory
            manifest = nil
            members = shardFiles.map { Member(path: inDirectory($0), entry: nil) }
            unlistedFiles = []
        }
    }
}

// MARK: - Verification

/// What `ShardCollection.verify()` found: every problem as a `ShardError` (one line naming
/// the file and, where it is local to one, the dataset), and notes that are not failures.
public struct VerificationReport: Sendable {
    /// Everything wrong, in file order.
    public var problems: [ShardError] = []
    /// Remarks that do not fail verification (leftover temporary files, an incomplete run, …).
    public var notes: [String] = []
    /// Shard files checked.
    public var shards = 0
    /// Samples in the shards that could be opened.
    public var samples = 0
    /// Bytes of the shard files checked.
    public var bytes = 0

    public init() {}

    /// True when nothing is wrong.
    public var isClean: Bool { problems.isEmpty }
}

extension ShardCollection {
    /// Checks everything that can be checked: the manifest's SHA-256, sample count and shard
    /// index of every shard; the schema of every shard; every stored chunk of every dataset,
    /// read through HDF5's Fletcher-32 checksum; values the schema constrains (class ids in
    /// range, flags 0 or 1, λ_gen in [0, 1], labels summing to 1); that all shards share
    /// classes and image size; and that the directory holds no shard the manifest does not
    /// list. Never throws: each problem becomes one entry of the report.
    ///
    /// - Parameter progress: called after each shard with the number of shards done.
    public func verify(progress: ((Int) -> Void)? = nil) -> VerificationReport {
        var report = VerificationReport()
        if let manifest, let manifestPath {
            report.problems += Self.checkManifestEntries(manifest, path: manifestPath)
            if case .int(let expected)? = manifest.config["num_shards"], manifest.shards.count < expected {
                report.notes.append("\(manifestPath): lists \(manifest.shards.count) of \(expected) shards (the run is not finished)")
            }
        }
        if members.contains(where: { $0.entry == nil }) {
            let what = source == .file ? "the shard" : "the shards"
            report.notes.append("\(path): no manifest.json lists \(what), so SHA-256 and sample counts were not checked")
        }
        for file in temporaryFiles {
            report.notes.append("\(file): leftover temporary file of an interrupted write (ignored)")
        }
        var reference: (path: String, names: [String], shape: [Int])?
        for (index, member) in members.enumerated() {
            report.shards += 1
            report.bytes += Self.fileSize(member.path) ?? 0
            let checked = Self.verifyShard(member)
            report.problems += checked.problems
            if let reader = checked.reader {
                report.samples += reader.count
                let shape = [reader.height, reader.width, reader.channels]
                if let reference {
                    if reader.metadata.classNames != reference.names {
                        report.problems.append(ShardError(member.path, dataset: "class_names", "differ from those of \(reference.path)"))
                    }
                    if shape != reference.shape {
                        func size(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: "×") }
                        report.problems.append(ShardError(member.path, dataset: "images",
                                                          "are \(size(shape)), those of \(reference.path) \(size(reference.shape))"))
                    }
                } else {
                    reference = (member.path, reader.metadata.classNames, shape)
                }
            }
            progress?(index + 1)
        }
        for file in unlistedFiles {
            report.problems.append(ShardError(file, "not listed in \(manifestPath ?? "manifest.json") (a shard from another run, or one the manifest lost)"))
        }
        return report
    }

    /// Duplicate files or shard indices in a manifest.
    private static func checkManifestEntries(_ manifest: Manifest, path: String) -> [ShardError] {
        var problems: [ShardError] = []
        var files = Set<String>(), indices = Set<Int>()
        for shard in manifest.shards {
            if !files.insert(shard.file).inserted {
                problems.append(ShardError(path, dataset: "shards", "lists \(shard.file) twice"))
            }
            if !indices.insert(shard.shardIndex).inserted {
                problems.append(ShardError(path, dataset: "shards", "lists shard index \(shard.shardIndex) twice"))
            }
        }
        return problems
    }

    /// Checks one shard; returns its problems and, when it opened, its reader.
    private static func verifyShard(_ member: Member) -> (problems: [ShardError], reader: ShardReader?) {
        let path = member.path
        let listedIn = "manifest.json"
        guard FileManager.default.fileExists(atPath: path) else {
            return ([ShardError(path, member.entry == nil ? "missing" : "missing (listed in \(listedIn))")], nil)
        }
        var problems: [ShardError] = []
        if let entry = member.entry {
            do {
                let sha = try Manifest.sha256(ofFile: path)
                if sha != entry.sha256.lowercased() {
                    problems.append(ShardError(path, "SHA-256 differs from \(listedIn) (the file was changed or damaged)"))
                }
            } catch let error as ShardError {
                problems.append(error)
            } catch {
                problems.append(ShardError(path, "cannot be hashed"))
            }
        }
        let reader: ShardReader
        do {
            reader = try ShardReader(path: path)
        } catch let error as ShardError {
            problems += TruncationDiagnosis.problems(path: path) ?? [error]
            return (problems, nil)
        } catch {
            problems.append(ShardError(path, "cannot be opened"))
            return (problems, nil)
        }
        if let entry = member.entry {
            if entry.count != reader.count {
                problems.append(ShardError(path, "holds \(reader.count) samples, \(listedIn) says \(entry.count)"))
            }
            if entry.shardIndex != reader.metadata.shardIndex {
                problems.append(ShardError(path, dataset: "shard_index", "is \(reader.metadata.shardIndex), \(listedIn) says \(entry.shardIndex)"))
            }
        }
        problems += DatasetCheck(reader: reader).run()
        return (problems, reader)
    }

    static func fileSize(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
    }
}

/// Reads every dataset of one shard in blocks of rows (so that every chunk's checksum is
/// checked) and checks the values the schema constrains.
private struct DatasetCheck {
    let reader: ShardReader
    /// Bytes read per block.
    let blockBytes = 1 << 22

    func run() -> [ShardError] {
        var problems: [ShardError] = []
        var columns = Columns()
        for dataset in ShardDataset.allCases {
            do {
                try read(dataset, into: &columns)
            } catch let error as ShardError {
                problems.append(error)
                columns.failed.insert(dataset)
            } catch {
                problems.append(ShardError(reader.path, dataset: dataset.name, "cannot be read"))
                columns.failed.insert(dataset)
            }
        }
        return problems + valueProblems(columns)
    }

    /// The small columns, kept for the value checks.
    struct Columns {
        var labels: [Float] = [], classA: [Int32] = [], classB: [Int32] = [], lambdaGen: [Float] = []
        var consistent: [UInt8] = []
        var failed = Set<ShardDataset>()
    }

    private func read(_ dataset: ShardDataset, into columns: inout Columns) throws {
        let rowBytes = dataset == .images ? max(1, reader.height * reader.width * reader.channels)
            : dataset == .labels ? 4 * reader.numClasses : dataset.elementType.size
        let step = max(1, blockBytes / rowBytes)
        var start = 0
        repeat {
            let rows = start..<min(reader.count, start + step)
            do {
                switch dataset {
                case .images: _ = try reader.images(rows: rows)
                case .labels: columns.labels += try reader.labels(rows: rows)
                case .classA: columns.classA += try reader.classA(rows: rows)
                case .classB: columns.classB += try reader.classB(rows: rows)
                case .lambdaGen: columns.lambdaGen += try reader.lambdaGen(rows: rows)
                case .lambdaProj: _ = try reader.lambdaProj(rows: rows)
                case .probA: _ = try reader.probA(rows: rows)
                case .probB: _ = try reader.probB(rows: rows)
                case .consistent: columns.consistent += try reader.consistent(rows: rows)
                case .group: _ = try reader.group(rows: rows)
                case .seed: _ = try reader.seed(rows: rows)
                }
            } catch let error as ShardError {
                let location = reader.count > step ? " (rows \(rows.lowerBound)..<\(rows.upperBound))" : ""
                throw ShardError(reader.path, dataset: dataset.name, error.problem + location)
            }
            start += step
        } while start < reader.count
    }

    /// One problem per dataset whose values break the schema: how many, and the first.
    private func valueProblems(_ c: Columns) -> [ShardError] {
        var problems: [ShardError] = []
        let k = reader.numClasses
        let real = reader.metadata.kind == .real
        func report<T>(_ dataset: ShardDataset, _ values: [T], _ rule: String, unit: String = "values", shown: String = "",
                       _ isBad: (Int, T) -> Bool) {
            guard !c.failed.contains(dataset) else { return }
            let bad = values.indices.filter { isBad($0, values[$0]) }
            guard let first = bad.first else { return }
            problems.append(ShardError(reader.path, dataset: dataset.name,
                                       "\(bad.count) of \(values.count) \(unit) \(rule) (first: row \(first), \(shown)\(values[first]))"))
        }
        report(.classA, c.classA, "lie outside 0..<\(k)") { _, a in a < 0 || Int(a) >= k }
        if real {
            report(.classB, c.classB, "are not −1 in a real shard") { _, b in b != -1 }
        } else {
            report(.classB, c.classB, "lie outside 0..<\(k) or equal class_a") { i, b in
                b < 0 || Int(b) >= k || (i < c.classA.count && c.classA[i] == b)
            }
        }
        report(.lambdaGen, c.lambdaGen, "lie outside [0, 1]") { _, v in !(v >= 0 && v <= 1) }
        report(.consistent, c.consistent, "are neither 0 nor 1") { _, v in v > 1 }
        if !c.failed.contains(.labels), k > 0 {
            // A row with a negative or non-finite entry gets the sum NaN.
            let sums = stride(from: 0, to: c.labels.count, by: k).map { start -> Float in
                let row = c.labels[start..<(start + k)]
                return row.allSatisfy { $0 >= 0 && $0.isFinite } ? row.reduce(0, +) : .nan
            }
            report(.labels, sums, "are not non-negative numbers summing to 1", unit: "rows", shown: "sum ") { _, sum in
                !(abs(sum - 1) <= 1e-3)
            }
        }
        return problems
    }
}

/// Says which datasets a truncated shard lost. HDF5 refuses to open a file shorter than the
/// end-of-file address its superblock records; a copy padded back to that length opens, and
/// a dataset whose description or chunks lie past the real end is one the cut damaged.
enum TruncationDiagnosis {
    /// The problems of a truncated shard, or nil when `path` is not a truncated HDF5 file.
    static func problems(path: String) -> [ShardError]? {
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
            return [ShardError(path, summary)]
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
        guard let damaged else { return [ShardError(path, "\(summary); the file's HDF5 header is cut off")] }
        guard !damaged.isEmpty else {
            // No dataset lost: the cut took root attributes (named by the reader) or free space.
            do {
                _ = try ShardReader(path: copy)
                return [ShardError(path, "\(summary); no dataset or attribute lies past the end")]
            } catch let error as ShardError {
                let lost = error.dataset == nil ? "its root attributes lie past the end (\(error.problem))" : error.problem
                return [ShardError(path, dataset: error.dataset, "\(summary); \(lost)")]
            } catch {
                return [ShardError(path, summary)]
            }
        }
        return damaged.map { ShardError(path, dataset: $0.0.name, "\(summary); \($0.1)") }
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
        let size = H5Tget_size(type), typeClass = H5Tget_class(type)
        let name: String
        if typeClass == H5T_INTEGER {
            name = (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(8 * size)"
        } else if typeClass == H5T_FLOAT {
            name = "float\(8 * size)"
        } else {
            return nil
        }
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

// MARK: - Samples for pictures

/// The samples of one group (a trajectory), in increasing λ_gen, with their images.
public struct Trajectory: Sendable {
    public let group: Int64
    /// The pair; λ_gen is the share of class a.
    public let classA: Int
    public let classB: Int
    public let lambdaGen: [Float]
    public let lambdaProj: [Float]
    public let consistent: [Bool]
    /// One uint8 [H, W, C] image per sample.
    public let images: [[UInt8]]
    public let height: Int
    public let width: Int
    public let channels: Int
}

/// λ̂ against λ_gen for the mixed samples of one class pair.
public struct PairProjections: Sendable {
    public let classA: Int
    public let classB: Int
    public internal(set) var lambdaGen: [Float] = []
    public internal(set) var lambdaProj: [Float] = []
    public internal(set) var consistent: [Bool] = []
}

/// The first real samples of one class.
public struct ClassExamples: Sendable {
    public let classIndex: Int
    /// uint8 [H, W, C] images.
    public let images: [[UInt8]]
    public let height: Int
    public let width: Int
    public let channels: Int
}

extension ShardCollection {
    /// Whether sample (a, b) belongs to one of `pairs` (in either order); true without a filter.
    private static func matches(_ a: Int32, _ b: Int32, _ pairs: [(Int, Int)]?) -> Bool {
        guard let pairs else { return true }
        return pairs.contains { (Int(a) == $0.0 && Int(b) == $0.1) || (Int(a) == $0.1 && Int(b) == $0.0) }
    }

    /// The `limit` groups with the smallest ids (of `pairs` only, in either order, when
    /// given), each with its samples in increasing λ_gen and their images. Reads the small
    /// columns of every shard, then only the images shown. A group id found in several
    /// shards (directories of different runs) is taken from the first.
    public func trajectories(limit: Int, pairs: [(Int, Int)]? = nil) throws -> [Trajectory] {
        struct Row { let shard: Int, row: Int, a: Int32, b: Int32, gen: Float, proj: Float, consistent: Bool }
        guard limit > 0 else { return [] }
        var rows: [Int64: [Row]] = [:]
        var shardOfGroup: [Int64: Int] = [:]   // a group is taken from the first shard that holds it
        var cutoff = Int64.max       // groups above it can no longer make the first `limit`
        var shape = (0, 0, 0)
        for (shardIndex, member) in members.enumerated() {
            let reader = try ShardReader(path: member.path)
            shape = (reader.height, reader.width, reader.channels)
            guard reader.metadata.kind == .mixed else { continue }
            let group = try reader.group(), classA = try reader.classA(), classB = try reader.classB()
            let gen = try reader.lambdaGen(), proj = try reader.lambdaProj(), flags = try reader.consistent()
            for i in 0..<reader.count where group[i] >= 0 && group[i] <= cutoff && Self.matches(classA[i], classB[i], pairs) {
                guard shardOfGroup[group[i], default: shardIndex] == shardIndex else { continue }
                shardOfGroup[group[i]] = shardIndex
                rows[group[i], default: []].append(Row(shard: shardIndex, row: i, a: classA[i], b: classB[i], gen: gen[i],
                                                       proj: proj[i], consistent: flags[i] != 0))
            }
            if rows.count > limit {
                let kept = rows.keys.sorted().prefix(limit)
                cutoff = kept.last ?? cutoff
                rows = rows.filter { $0.key <= cutoff }
            }
        }
        let groups = rows.keys.sorted().prefix(limit)
        // Read the images shown, shard by shard, in runs of consecutive rows.
        var wanted: [Int: Set<Int>] = [:]
        for id in groups { for row in rows[id] ?? [] { wanted[row.shard, default: []].insert(row.row) } }
        var images: [Int: [Int: [UInt8]]] = [:]
        for (shard, set) in wanted {
            let reader = try ShardReader(path: members[shard].path)
            let size = reader.height * reader.width * reader.channels
            for run in Self.runs(set.sorted()) {
                let pixels = try reader.images(rows: run)
                for (offset, row) in run.enumerated() {
                    images[shard, default: [:]][row] = Array(pixels[(offset * size)..<((offset + 1) * size)])
                }
            }
        }
        return groups.map { id in
            let samples = (rows[id] ?? []).sorted { $0.gen < $1.gen }
            return Trajectory(group: id, classA: Int(samples.first?.a ?? 0), classB: Int(samples.first?.b ?? 0),
                              lambdaGen: samples.map(\.gen), lambdaProj: samples.map(\.proj), consistent: samples.map(\.consistent),
                              images: samples.map { images[$0.shard]?[$0.row] ?? [] },
                              height: shape.0, width: shape.1, channels: shape.2)
        }
    }

    /// λ_gen, λ̂ and the consistency flag of every mixed sample with a λ̂, per class pair
    /// (of `pairs` only, in either order, when given), pairs in the order they first appear.
    public func projections(pairs: [(Int, Int)]? = nil) throws -> [PairProjections] {
        var order: [[Int32]] = []
        var result: [[Int32]: PairProjections] = [:]
        for member in members {
            let reader = try ShardReader(path: member.path)
            guard reader.metadata.kind == .mixed else { continue }
            let classA = try reader.classA(), classB = try reader.classB()
            let gen = try reader.lambdaGen(), proj = try reader.lambdaProj(), flags = try reader.consistent()
            for i in 0..<reader.count where proj[i].isFinite && Self.matches(classA[i], classB[i], pairs) {
                let key = [classA[i], classB[i]]
                if result[key] == nil {
                    order.append(key)
                    result[key] = PairProjections(classA: Int(classA[i]), classB: Int(classB[i]))
                }
                result[key]?.lambdaGen.append(gen[i])
                result[key]?.lambdaProj.append(proj[i])
                result[key]?.consistent.append(flags[i] != 0)
            }
        }
        return order.compactMap { result[$0] }
    }

    /// Up to `perClass` real samples of each of the first `classLimit` classes, in file order.
    public func examples(perClass: Int, classLimit: Int) throws -> [ClassExamples] {
        var found: [Int: [[UInt8]]] = [:]
        var shape = (0, 0, 0)
        for member in members {
            let reader = try ShardReader(path: member.path)
            guard reader.metadata.kind == .real else { continue }
            shape = (reader.height, reader.width, reader.channels)
            let classes = min(classLimit, reader.numClasses)
            let size = reader.height * reader.width * reader.channels
            let classA = try reader.classA()
            var rows: [Int] = []
            var taken = (0..<classes).map { found[$0]?.count ?? 0 }
            for (i, a) in classA.enumerated() where a >= 0 && Int(a) < classes && taken[Int(a)] < perClass {
                taken[Int(a)] += 1
                rows.append(i)
            }
            for run in Self.runs(rows) {
                let pixels = try reader.images(rows: run)
                for (offset, row) in run.enumerated() {
                    found[Int(classA[row]), default: []].append(Array(pixels[(offset * size)..<((offset + 1) * size)]))
                }
            }
            if (0..<classes).allSatisfy({ (found[$0]?.count ?? 0) >= perClass }) { break }
        }
        return found.keys.sorted().map {
            ClassExamples(classIndex: $0, images: found[$0] ?? [], height: shape.0, width: shape.1, channels: shape.2)
        }
    }

    /// Sorted row numbers as ranges of consecutive rows.
    static func runs(_ rows: [Int]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        for row in rows {
            if let last = result.last, last.upperBound == row {
                result[result.count - 1] = last.lowerBound..<(row + 1)
            } else {
                result.append(row..<(row + 1))
            }
        }
        return result
    }
}

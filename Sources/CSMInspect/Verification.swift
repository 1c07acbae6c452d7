import CSMFormats
import CSMShards
import Foundation

/// What `ShardCollection.verify()` found: every problem as a `FileError` (one line naming
/// the file and, where it is local to one, the dataset), and notes that are not failures.
public struct VerificationReport: Sendable {
    /// Everything wrong, in file order.
    public var problems: [FileError] = []
    /// Remarks that do not fail verification (leftover temporary files, shards without a manifest, …).
    public var notes: [String] = []
    /// Findings that do not fail verification but deserve a look (constant real images).
    public var warnings: [String] = []
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
    /// Checks everything that can be checked: that the manifest lists every shard of its run
    /// (when its configuration gives the count); the manifest's SHA-256, sample count and shard
    /// index of every shard; the schema of every shard; every stored chunk of every dataset,
    /// read through HDF5's Fletcher-32 checksum; values the schema constrains (class ids in
    /// range, flags 0 or 1, λ_gen in [0, 1], labels non-negative and summing to 1 within
    /// 1e-5, no constant mixed image — a generator never makes one, a broken model does, and
    /// constant real images are counted in a warning); that all shards share
    /// classes and image size; and that the directory holds no shard the manifest does not
    /// list. Never throws: each problem becomes one entry of the report.
    ///
    /// - Parameter progress: called after each shard with the number of shards done.
    public func verify(progress: ((Int) -> Void)? = nil) -> VerificationReport {
        var report = VerificationReport()
        for gap in coverage.gaps {
            report.problems.append(FileError(gap.manifests[0], dataset: "shards", "incomplete dataset: \(gap.lacking)"))
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
            let checked = Self.verifyShard(member, warnings: &report.warnings)
            report.problems += checked.problems
            if let reader = checked.reader {
                report.samples += reader.count
                let shape = [reader.height, reader.width, reader.channels]
                if let reference {
                    if reader.metadata.classNames != reference.names {
                        report.problems.append(FileError(member.path, dataset: "class_names", "differ from those of \(reference.path)"))
                    }
                    if shape != reference.shape {
                        func size(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: "×") }
                        report.problems.append(FileError(member.path, dataset: "images",
                                                          "are \(size(shape)), those of \(reference.path) \(size(reference.shape))"))
                    }
                } else {
                    reference = (member.path, reader.metadata.classNames, shape)
                }
            }
            progress?(index + 1)
        }
        for file in unlistedFiles {
            report.problems.append(FileError(file, "not listed in \(manifestPath ?? "manifest.json") (a shard from another run, or one the manifest lost)"))
        }
        return report
    }

    /// Checks one shard; returns its problems and, when it opened, its reader.
    private static func verifyShard(_ member: Member, warnings: inout [String]) -> (problems: [FileError], reader: ShardReader?) {
        let path = member.path
        let listedIn = "manifest.json"
        guard FileManager.default.fileExists(atPath: path) else {
            return ([FileError(path, member.entry == nil ? "missing" : "missing (listed in \(listedIn))")], nil)
        }
        var problems: [FileError] = []
        if let entry = member.entry {
            do {
                let sha = try FileHash.sha256(ofFile: path)
                if sha != entry.sha256.lowercased() {
                    problems.append(FileError(path, "SHA-256 differs from \(listedIn) (the file was changed or damaged)"))
                }
            } catch let error as FileError {
                problems.append(error)
            } catch {
                problems.append(FileError(path, "cannot be hashed"))
            }
        }
        let reader: ShardReader
        do {
            reader = try ShardReader(path: path)
        } catch let error as FileError {
            problems += TruncationDiagnosis.problems(path: path) ?? [error]
            return (problems, nil)
        } catch {
            problems.append(FileError(path, "cannot be opened"))
            return (problems, nil)
        }
        if let entry = member.entry {
            if entry.count != reader.count {
                problems.append(FileError(path, "holds \(reader.count) samples, \(listedIn) says \(entry.count)"))
            }
            if entry.shardIndex != reader.metadata.shardIndex {
                problems.append(FileError(path, dataset: "shard_index", "is \(reader.metadata.shardIndex), \(listedIn) says \(entry.shardIndex)"))
            }
        }
        let check = DatasetCheck(reader: reader).run()
        problems += check.problems
        if let warning = check.warning { warnings.append(warning) }
        return (problems, reader)
    }

}

/// Reads every dataset of one shard in blocks of rows (so that every chunk's checksum is
/// checked) and checks the values the schema constrains.
private struct DatasetCheck {
    let reader: ShardReader
    /// Bytes read per block.
    let blockBytes = 1 << 22

    func run() -> (problems: [FileError], warning: String?) {
        var problems: [FileError] = []
        var columns = Columns()
        for dataset in ShardDataset.allCases {
            do {
                try read(dataset, into: &columns)
            } catch let error as FileError {
                problems.append(error)
                columns.failed.insert(dataset)
            } catch {
                problems.append(FileError(reader.path, dataset: dataset.name, "cannot be read"))
                columns.failed.insert(dataset)
            }
        }
        var warning: String?
        if let first = columns.constantImages.first, !columns.failed.contains(.images) {
            let what = "\(columns.constantImages.count) of \(reader.count) \(reader.metadata.kind.rawValue) images are constant "
                + "(first: row \(first.row), every pixel \(first.value))"
            if reader.metadata.kind == .mixed {
                problems.append(FileError(reader.path, dataset: ShardDataset.images.name,
                                          what + "; no generator makes those: the diffusion model or the sampler failed"))
            } else {
                warning = "\(reader.path): \(what)"
            }
        }
        return (problems + valueProblems(columns), warning)
    }

    /// The small columns, kept for the value checks.
    struct Columns {
        var labels: [Float] = [], classA: [Int32] = [], classB: [Int32] = [], lambdaGen: [Float] = []
        var consistent: [UInt8] = []
        /// Images whose pixels all hold one value: (row, value).
        var constantImages: [(row: Int, value: UInt8)] = []
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
                case .images:
                    let pixels = try reader.images(rows: rows)
                    let size = reader.height * reader.width * reader.channels
                    for (offset, row) in rows.enumerated() where size > 0 {
                        let image = pixels[(offset * size)..<((offset + 1) * size)]
                        if let value = image.first, !image.contains(where: { $0 != value }) {
                            columns.constantImages.append((row, value))
                        }
                    }
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
            } catch let error as FileError {
                let location = reader.count > step ? " (rows \(rows.lowerBound)..<\(rows.upperBound))" : ""
                throw FileError(reader.path, dataset: dataset.name, error.problem + location)
            }
            start += step
        } while start < reader.count
    }

    /// One problem per dataset whose values break the schema: how many, and the first.
    private func valueProblems(_ c: Columns) -> [FileError] {
        var problems: [FileError] = []
        let k = reader.numClasses
        let real = reader.metadata.kind == .real
        func report<T>(_ dataset: ShardDataset, _ values: [T], _ rule: String, unit: String = "values", shown: String = "",
                       _ isBad: (Int, T) -> Bool) {
            guard !c.failed.contains(dataset) else { return }
            let bad = values.indices.filter { isBad($0, values[$0]) }
            guard let first = bad.first else { return }
            problems.append(FileError(reader.path, dataset: dataset.name,
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
            let sums = stride(from: 0, to: c.labels.count, by: k).map { start -> Double in
                let row = c.labels[start..<(start + k)]
                return row.allSatisfy { $0 >= 0 && $0.isFinite } ? row.reduce(0) { $0 + Double($1) } : .nan
            }
            report(.labels, sums, "are not non-negative numbers summing to 1 within \(ShardSamples.labelSumTolerance)",
                   unit: "rows", shown: "sum ") { _, sum in !(abs(sum - 1) <= ShardSamples.labelSumTolerance) }
        }
        return problems
    }
}

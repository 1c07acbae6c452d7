import ArgumentParser
import CSMFormats
import CSMImport
import Foundation

/// `csm import`: turns a labelled image dataset into real-data csm-shard/1 shards
/// (one-hot labels) plus a manifest.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a labelled image dataset as real-data shards (real-<split>-NNNNN.h5 + manifest.json).",
        discussion: """
            One subcommand per source; `csm import SOURCE --help` shows each with its examples.

            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm import fashion-mnist --split test --out data/real-test
            """,
        subcommands: [ImportFashionMNIST.self, ImportIDX.self, ImportCIFAR10.self, ImportCIFAR100.self, ImportFolder.self])
}

/// Options every import shares.
struct ImportOutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Output folder for the shards and manifest.json.", valueName: "dir"))
    var out: String

    @Option(help: "Images per shard.")
    var shardSize = 10_000

    func validate() throws {
        guard shardSize > 0 else { throw ValidationError("--shard-size must be positive, got \(shardSize)") }
    }

    /// Writes `data` as shards of `split`, with progress and a one-line summary.
    func write(_ data: LabeledImages, config: ImportConfig) throws {
        let split = config.split
        let importer = RealDataImport(split: split, shardSize: shardSize, createdBy: "csm \(CSMVersion.string)")
        let progress = ProgressReporter("writing shards", total: data.count, unit: "images")
        let start = Date()
        let manifest = try importer.write(data, to: out, config: try config.json()) { progress.update($0) }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "imported %d images (%d×%d×%d, %d classes) into %d shard%@ in %@ (%.1f s)",
                     data.count, data.height, data.width, data.channels, data.classNames.count, manifest.shards.count,
                     manifest.shards.count == 1 ? "" : "s", out, seconds))
    }
}

/// A dataset split name as it appears in file names.
func validateSplit(_ split: String) throws {
    guard !split.isEmpty, split.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
        throw ValidationError("--split must be letters, digits or '_', got '\(split)'")
    }
}

/// Runs an import into `output.out`, holding that directory's lock (one writer per output
/// directory) from the start.
func runImport(into output: ImportOutputOptions, _ body: () throws -> Void) throws {
    let lock = try DirectoryLock(directory: output.out, command: "csm import")
    defer { lock.release() }
    try body()
}

struct ImportFashionMNIST: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fashion-mnist",
        abstract: "Import Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist by default).",
        discussion: """
            Examples:
              csm import fashion-mnist --split train --out data/real-train
              csm import fashion-mnist --split test --out data/real-test
            """)

    @Option(help: "train or test.")
    var split: String

    @Option(help: ArgumentHelp("Folder with train-images-idx3-ubyte.gz etc. (plain files work too).", valueName: "dir"))
    var source = FashionMNIST.debianFolder

    @OptionGroup var output: ImportOutputOptions

    func validate() throws {
        guard split == "train" || split == "test" else { throw ValidationError("--split must be train or test, got '\(split)'") }
    }

    func run() throws {
        let (images, labels) = try FashionMNIST.files(in: source, split: split)
        try runImport(into: output) {
            let data = try IDXReader.read(images: images, labels: labels, classNames: FashionMNIST.classNames)
            try output.write(data, config: try .idx(source: "fashion-mnist", split: split, images: images, labels: labels))
        }
    }
}

struct ImportIDX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idx", abstract: "Import a pair of MNIST-style IDX files (gzipped or not).",
        discussion: """
            The class names come from a JSON list, in the order of the label values.

            Examples:
              echo '["T-shirt/top","Trouser","Pullover","Dress","Coat",' > names.json
              echo '"Sandal","Shirt","Sneaker","Bag","Ankle boot"]' >> names.json
              csm import idx --split test --out data/idx-test --class-names names.json \\
                  --images /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \\
                  --labels /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
            """)

    @Option(help: ArgumentHelp("IDX images file (magic 0x00000803).", valueName: "file"))
    var images: String

    @Option(help: ArgumentHelp("IDX labels file (magic 0x00000801).", valueName: "file"))
    var labels: String

    @Option(help: ArgumentHelp("JSON file with the list of class names.", valueName: "file.json"))
    var classNames: String

    @Option(help: "Split name used in the shard file names.")
    var split = "train"

    @OptionGroup var output: ImportOutputOptions

    func validate() throws { try validateSplit(split) }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: classNames) else { throw CLIError("\(classNames): cannot be read") }
        guard let names = ClassNames.parse(data), !names.isEmpty else {
            throw CLIError("\(classNames): is not a JSON list of class names")
        }
        try runImport(into: output) {
            let dataset = try IDXReader.read(images: images, labels: labels, classNames: names)
            try output.write(dataset, config: try .idx(source: "idx", split: split, images: images, labels: labels))
        }
    }
}

/// Shared body of the CIFAR imports.
func importCIFAR(_ variant: CIFARReader.Variant, source: String, split: String, output: ImportOutputOptions) throws {
    try runImport(into: output) {
        let folder = CIFARReader.dataFolder(variant, source: source)
        let files = CIFARReader.fileNames(variant, split: split).map { (folder as NSString).appendingPathComponent($0) }
        let names = try CIFARReader.classNames(variant, folder: folder)
        let data = try CIFARReader.read(variant, files: files, classNames: names)
        try output.write(data, config: try .cifar(variant, split: split, files: files))
    }
}

/// The flags both CIFAR imports take.
struct CIFAROptions: ParsableArguments {
    @Option(help: ArgumentHelp("Folder with the .bin files (or its parent).", valueName: "dir"))
    var source: String

    @Option(help: "train or test.")
    var split: String

    func validate() throws {
        guard split == "train" || split == "test" else { throw ValidationError("--split must be train or test, got '\(split)'") }
    }
}

struct ImportCIFAR10: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cifar10", abstract: "Import CIFAR-10 (binary version: data_batch_1..5.bin, test_batch.bin).",
        discussion: """
            The binary version is cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html; \
            unpacked, it is the folder cifar-10-batches-bin.

            Examples:
              tar xzf cifar-10-binary.tar.gz
              csm import cifar10 --source cifar-10-batches-bin --split train \\
                  --out data/cifar10-train
              csm import cifar10 --source cifar-10-batches-bin --split test \\
                  --out data/cifar10-test
            """)

    @OptionGroup var cifar: CIFAROptions
    @OptionGroup var output: ImportOutputOptions

    func run() throws { try importCIFAR(.cifar10, source: cifar.source, split: cifar.split, output: output) }
}

struct ImportCIFAR100: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cifar100", abstract: "Import CIFAR-100 with its fine labels (binary version: train.bin, test.bin).",
        discussion: """
            The binary version is cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html; \
            unpacked, it is the folder cifar-100-binary.

            Examples:
              tar xzf cifar-100-binary.tar.gz
              csm import cifar100 --source cifar-100-binary --split train \\
                  --out data/cifar100-train
              csm import cifar100 --source cifar-100-binary --split test \\
                  --out data/cifar100-test
            """)

    @OptionGroup var cifar: CIFAROptions
    @OptionGroup var output: ImportOutputOptions

    func run() throws { try importCIFAR(.cifar100, source: cifar.source, split: cifar.split, output: output) }
}

struct ImportFolder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "folder",
        abstract: "Import an ImageFolder tree: one subfolder per class (sorted by name), PNG or JPEG images inside.",
        discussion: """
            Examples:
              csm sample --seeds 0-15 --class Sandal --png pictures/sandal
              csm sample --seeds 0-15 --class Sneaker --png pictures/sneaker
              csm import folder pictures --out data/pictures
            """)

    @Argument(help: ArgumentHelp("The root folder.", valueName: "dir"))
    var root: String

    @Option(help: "Split name used in the shard file names.")
    var split = "train"

    @OptionGroup var output: ImportOutputOptions

    func validate() throws { try validateSplit(split) }

    func run() throws {
        try runImport(into: output) {
            var progress: ProgressReporter?
            let data = try ImageFolderReader.read(root) { done, total in
                if progress == nil { progress = ProgressReporter("reading images", total: total, unit: "images") }
                progress?.update(done)
            }
            try output.write(data, config: .folder(root: root, split: split))
        }
    }
}

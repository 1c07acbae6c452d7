import ArgumentParser
import CSMFormats

/// `csm`: calibration-aware semantic mixing — sample class-mixed images from a diffusion
/// model, reannotate their soft labels, write and inspect HDF5 shards, measure calibration.
/// Public so that the tests can parse command lines (the examples in every command's help)
/// as the binary does.
@main
public struct CSM: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "csm",
        abstract: "Calibration-aware semantic mixing: class-mixed diffusion samples with soft labels.",
        discussion: """
            A typical run with the shipped Fashion-MNIST models: look at a trajectory, make the \
            mixed data, import the real data, check the result, train and evaluate a classifier. \
            Each command's --help explains it, with examples.

            Examples:
              csm sample --seeds 0-7 --trajectory Sneaker:"Ankle boot" --grid traj.png
              csm generate --out data/mixed
              csm import fashion-mnist --split train --out data/real-train
              csm import fashion-mnist --split test --out data/real-test
              csm inspect data/mixed --verify --grid grid.png --plot plot.png
              csm train --real data/real-train --mixed data/mixed --loss csm --clip 2 \\
                  --out csm.safetensors
              csm evaluate --classifier csm.safetensors --data data/real-test \\
                  --diagram rel.png
            """,
        version: CSMVersion.string,
        subcommands: [
            SampleCommand.self, GenerateCommand.self, PairsCommand.self, MergeCommand.self, AttributeCommand.self, ImportCommand.self, SplitCommand.self, PrototypesCommand.self,
            InspectCommand.self, EvaluateCommand.self, TrainCommand.self, BenchKernelsCommand.self, BenchLoaderCommand.self,
        ])
}

enum CSMVersion {
    static let string = "0.1.0"
}

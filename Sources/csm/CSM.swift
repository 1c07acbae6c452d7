import ArgumentParser

/// `csm`: calibration-aware semantic mixing — sample class-mixed images from a diffusion
/// model, measure calibration, and (soon) write and inspect soft-label HDF5 shards.
@main
struct CSM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csm",
        abstract: "Calibration-aware semantic mixing: class-mixed diffusion samples with soft labels.",
        discussion: """
            Examples:
              csm sample --seeds 0-15 --mix 7:9:0.7 --png out/        # 70% sneaker, 30% ankle boot
              csm evaluate --logits val.safetensors --diagram rel.png
            """,
        version: CSMVersion.string,
        subcommands: [SampleCommand.self, GenerateCommand.self, MergeCommand.self, InspectCommand.self, EvaluateCommand.self, ImportCommand.self, PrototypesCommand.self, BenchKernelsCommand.self, BenchLoaderCommand.self])
}

enum CSMVersion {
    static let string = "0.1.0"
}

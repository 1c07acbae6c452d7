// swift-tools-version:6.0
import PackageDescription

/// Hot numeric targets are always built with optimisation, even in debug builds, so
/// that tests and the CLI stay usable. On x86-64 they target AVX2 + FMA (Haswell, 2013,
/// and later) so that SIMD16<Float> code uses wide registers.
#if arch(x86_64)
let targetCPU = ["-target-cpu", "haswell"]
#else
let targetCPU: [String] = []
#endif
let optimised: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"] + targetCPU)]

let package = Package(
    name: "csm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "csm", targets: ["csm"]),
        .library(name: "CSMNumerics", targets: ["CSMNumerics"]),
        .library(name: "CSMModels", targets: ["CSMModels"]),
        .library(name: "CSMDiffusion", targets: ["CSMDiffusion"]),
        .library(name: "CSMCalibration", targets: ["CSMCalibration"]),
        .library(name: "CSMPictures", targets: ["CSMPictures"]),
        .library(name: "CSMPipeline", targets: ["CSMPipeline"]),
        .library(name: "CSMLoader", targets: ["CSMLoader"]),
        .library(name: "CSMShards", targets: ["CSMShards"]),
        .library(name: "CSMTraining", targets: ["CSMTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries (Debian packages; `make deps` installs them).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // HDF5 macros Swift cannot import (H5P_DEFAULT, H5T_NATIVE_*, …) as functions, and the error stack.
        .target(name: "CHDF5Shim", dependencies: ["CHDF5"]),
        // libjpeg (Debian's libjpeg62-turbo) behind a setjmp-safe C wrapper.
        .target(name: "CJPEGShim", linkerSettings: [.linkedLibrary("jpeg")]),

        // Tensors, BLAS bridge, kernels, thread pool. Knows nothing about diffusion or files.
        .target(name: "CSMNumerics", dependencies: ["CBLAS"], swiftSettings: optimised),
        // safetensors, EDM networks, preconditioners.
        .target(name: "CSMModels", dependencies: ["CSMNumerics"], swiftSettings: optimised),
        // Samplers, schedules, counter-based seeds.
        .target(name: "CSMDiffusion", dependencies: ["CSMModels", "CSMNumerics"], swiftSettings: optimised),
        // PNG writing (libpng), raster drawing, a small bitmap font.
        .target(name: "CSMPictures", dependencies: ["CPNG"], swiftSettings: optimised),
        // Calibration metrics, reliability diagrams, losses, temperature scaling.
        .target(name: "CSMCalibration", dependencies: ["CSMPictures"], swiftSettings: optimised),
        // The csm-shard/1 HDF5 schema: writer, reader, manifest.
        .target(name: "CSMShards", dependencies: ["CHDF5", "CHDF5Shim", "CZlib", "CPNG", "CJPEGShim", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: optimised),

        // The loader library: datasets over shards, paired sampling, transforms, batching, prefetch.
        .target(name: "CSMLoader", dependencies: ["CSMShards"], swiftSettings: optimised),

        // Optimisers, schedules, losses as trained, the training loop and its checkpoints.
        .target(name: "CSMTraining", dependencies: ["CSMNumerics", "CSMModels", "CSMCalibration", "CSMLoader", "CSMShards"],
                swiftSettings: optimised),

        // generate = sample → reannotate → write: plans, seeds, reannotation.
        .target(name: "CSMPipeline", dependencies: ["CSMDiffusion", "CSMModels", "CSMNumerics", "CSMShards"], swiftSettings: optimised),

        .executableTarget(
            name: "csm",
            dependencies: [
                "CSMNumerics", "CSMModels", "CSMDiffusion", "CSMCalibration", "CSMPictures", "CSMPipeline", "CSMShards", "CSMLoader", "CSMTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "CSMNumericsTests", dependencies: ["CSMNumerics"]),
        .testTarget(name: "CSMModelsTests", dependencies: ["CSMModels", "CSMNumerics"]),
        .testTarget(name: "CSMDiffusionTests", dependencies: ["CSMDiffusion", "CSMModels", "CSMNumerics"]),
        .testTarget(name: "CSMPicturesTests", dependencies: ["CSMPictures"]),
        .testTarget(name: "CSMPipelineTests", dependencies: ["CSMPipeline", "CSMDiffusion", "CSMModels", "CSMShards"]),
        .testTarget(name: "CSMCalibrationTests", dependencies: ["CSMCalibration", "CSMModels"]),
        .testTarget(name: "CSMShardsTests", dependencies: ["CSMShards", "CJPEGShim"]),
        .testTarget(name: "CSMLoaderTests", dependencies: ["CSMLoader", "CSMShards"]),
        .testTarget(name: "CSMTrainingTests", dependencies: ["CSMTraining", "CSMModels", "CSMNumerics", "CSMLoader", "CSMShards"]),
        // Runs the built csm binary end to end.
        .testTarget(name: "CSMCLITests", dependencies: ["csm", "CSMModels", "CSMShards", "CSMPipeline", "CSMLoader"]),
    ],
    swiftLanguageModes: [.v5]
)

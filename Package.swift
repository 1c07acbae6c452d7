// swift-tools-version:6.0
import PackageDescription

/// Only the numeric kernels (CSMNumerics: hot loops over unsafe buffers, each checked
/// against a slow reference in the tests) build with `-Ounchecked`. Everything that reads
/// files or user input — formats, shards, import, inspect, loader, models, pipeline, CLI —
/// builds with `-O`, so bounds and overflow checks stay on. On x86-64 the numeric code
/// targets AVX2 + FMA (Haswell, 2013, and later) so that SIMD16<Float> code uses wide registers.
///
/// The libraries other packages use (the products CSMLoader, CSMShards, CSMCalibration,
/// CSMFormats, CSMImport) and every target they reach carry no `unsafeFlags`, which SwiftPM refuses in
/// a versioned dependency: they build with the package's own release settings (`-O`,
/// whole-module), which is what `checked` spells out for the rest.
#if arch(x86_64)
let targetCPU = ["-target-cpu", "haswell"]
#else
let targetCPU: [String] = []
#endif
let kernels: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"] + targetCPU)]
let checked: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"] + targetCPU)]

let package = Package(
    name: "csm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "csm", targets: ["csm"]),
        // Reading shards in a training loop (datasets, pairing, transforms, batches).
        .library(name: "CSMLoader", targets: ["CSMLoader"]),
        // Reading and writing csm-shard/1 files and their manifest.
        .library(name: "CSMShards", targets: ["CSMShards"]),
        // Calibration metrics, losses and temperature scaling for a training loop.
        .library(name: "CSMCalibration", targets: ["CSMCalibration"]),
        // safetensors, .npy and the one file error the others report with.
        .library(name: "CSMFormats", targets: ["CSMFormats"]),
        // Importing IDX, CIFAR and image folders into real-data shards.
        .library(name: "CSMImport", targets: ["CSMImport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System libraries (Debian packages; `make deps` installs them).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // HDF5 macros Swift cannot import (H5P_DEFAULT, H5T_NATIVE_*, …) as functions, and the error stack.
        .target(name: "CHDF5Shim", dependencies: ["CHDF5"]),
        // libjpeg (Debian's libjpeg62-turbo) behind a setjmp-safe C wrapper.
        .target(name: "CJPEGShim", linkerSettings: [.linkedLibrary("jpeg")]),
        // oneDNN primitives behind plain C calls: fp32 convolutions with their gradients (training), and
        // bf16 convolutions (AMX / AVX512-BF16) with the fp32 → bf16 rounding (--precision bf16).
        .target(name: "CDNNLKernels", dependencies: ["CDNNL"]),
        // The Gaussian random projection's entries: Philox + Box–Muller, AVX-512 where the CPU has it.
        .target(name: "CGaussianKernels"),

        // Tensors, BLAS bridge, kernels, thread pool. Knows nothing about diffusion or files.
        .target(name: "CSMNumerics", dependencies: ["CBLAS", "CDNNL", "CDNNLKernels"], swiftSettings: kernels),
        // File formats and file safety, no numerics: safetensors, .npy, JSON values, the one
        // atomic write, the one file hash, the one file error, the output-directory lock.
        .target(name: "CSMFormats", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // EDM networks, preconditioners, ResNet classifiers, built from model files.
        .target(name: "CSMModels", dependencies: ["CSMNumerics", "CSMFormats", "CSMRandom"], swiftSettings: checked),
        // Counter-based and splittable random numbers (Philox, Gaussian streams, SplitMix64): every seed's one home.
        .target(name: "CSMRandom"),
        // Samplers and schedules.
        .target(name: "CSMDiffusion", dependencies: ["CSMModels", "CSMNumerics", "CSMRandom"], swiftSettings: checked),
        // Calibration metrics, losses, temperature scaling, the logits and labels they are measured on.
        .target(name: "CSMCalibration", dependencies: ["CSMRandom", "CSMFormats"]),
        // PNG writing (libpng), raster drawing, a small bitmap font, plots, reliability diagrams.
        .target(name: "CSMPictures", dependencies: ["CPNG", "CSMFormats", "CSMCalibration"], swiftSettings: checked),
        // libhdf5 for csm's HDF5 files (shards, attribution files): the lock, handles,
        // reproducible files, datasets and attributes, and the probes of damaged files.
        // The only module that calls the C library.
        .target(name: "CSMHDF5", dependencies: ["CHDF5", "CHDF5Shim", "CSMFormats"]),
        // The csm-shard/1 HDF5 schema: writer, reader, manifest, the one path resolver.
        // What a training loop links: no image decoders.
        .target(name: "CSMShards", dependencies: ["CSMHDF5", "CSMFormats"]),
        // Dataset importers (IDX, PNG/JPEG folders, CIFAR binary) → real-data shards.
        .target(name: "CSMImport", dependencies: ["CSMShards", "CSMFormats", "CZlib", "CPNG", "CJPEGShim"]),
        // Summaries, verification, truncation forensics, the pictures and the queries behind them.
        .target(name: "CSMInspect", dependencies: ["CSMShards", "CSMHDF5", "CSMFormats", "CSMRandom", "CSMPictures"], swiftSettings: checked),

        // The loader library: datasets over shards, paired sampling, transforms, batching, prefetch.
        .target(name: "CSMLoader", dependencies: ["CSMShards", "CSMRandom"]),

        // Optimisers, schedules, losses as trained, the training loop and its checkpoints.
        .target(name: "CSMTraining", dependencies: ["CSMNumerics", "CSMFormats", "CSMModels", "CSMCalibration", "CSMLoader", "CSMShards"],
                swiftSettings: checked),

        // DAS attribution: per-sample gradient features, the random projection, the kernel,
        // top-k, and the csm-attribution-features/1 and csm-attributions/1 files.
        .target(name: "CSMAttribution", dependencies: ["CSMModels", "CSMDiffusion", "CSMNumerics", "CSMShards", "CSMHDF5", "CSMFormats",
                                                       "CSMRandom", "CGaussianKernels", "CSMPictures"],
                swiftSettings: checked),

        // generate = sample → reannotate → write: plans, seeds, reannotation, the run configuration;
        // and what `csm sample` samples from and draws.
        .target(name: "CSMPipeline", dependencies: ["CSMDiffusion", "CSMModels", "CSMNumerics", "CSMShards", "CSMFormats", "CSMRandom",
                                                    "CSMPictures"],
                swiftSettings: checked),

        .executableTarget(
            name: "csm",
            dependencies: [
                "CSMNumerics", "CSMFormats", "CSMModels", "CSMDiffusion", "CSMCalibration", "CSMPictures", "CSMPipeline",
                "CSMShards", "CSMImport", "CSMInspect", "CSMLoader", "CSMTraining", "CSMAttribution", "CSMRandom",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: checked),

        .testTarget(name: "CSMNumericsTests", dependencies: ["CSMNumerics"]),
        .testTarget(name: "CSMFormatsTests", dependencies: ["CSMFormats"]),
        .testTarget(name: "CSMModelsTests", dependencies: ["CSMModels", "CSMNumerics", "CSMFormats", "CSMRandom"]),
        .testTarget(name: "CSMDiffusionTests", dependencies: ["CSMDiffusion", "CSMModels", "CSMNumerics", "CSMFormats", "CSMRandom"]),
        // Seeded inputs several test targets share.
        .target(name: "CSMTestSupport", dependencies: ["CSMRandom"], path: "Tests/CSMTestSupport"),
        .testTarget(name: "CSMPicturesTests", dependencies: ["CSMPictures", "CSMCalibration", "CSMTestSupport"]),
        .testTarget(name: "CSMPipelineTests", dependencies: ["CSMPipeline", "CSMDiffusion", "CSMModels", "CSMNumerics", "CSMShards", "CSMImport",
                                                          "CSMFormats", "CSMPictures", "CSMRandom"]),
        .testTarget(name: "CSMCalibrationTests", dependencies: ["CSMCalibration", "CSMFormats", "CSMTestSupport"]),
        .testTarget(name: "CSMShardsTests", dependencies: ["CSMShards", "CSMHDF5", "CSMFormats"]),
        .testTarget(name: "CSMImportTests", dependencies: ["CSMImport", "CSMShards", "CSMFormats", "CJPEGShim"]),
        .testTarget(name: "CSMInspectTests", dependencies: ["CSMInspect", "CSMShards", "CSMFormats", "CSMPictures"]),
        .testTarget(name: "CSMLoaderTests", dependencies: ["CSMLoader", "CSMShards", "CSMFormats"]),
        .testTarget(name: "CSMTrainingTests", dependencies: ["CSMTraining", "CSMCalibration", "CSMModels", "CSMNumerics", "CSMLoader", "CSMShards", "CSMFormats"]),
        .testTarget(name: "CSMAttributionTests", dependencies: ["CSMAttribution", "CSMPictures", "CSMModels", "CSMDiffusion", "CSMShards", "CSMFormats", "CSMRandom",
                                                               "CGaussianKernels"]),
        // Runs the built csm binary end to end.
        .testTarget(name: "CSMCLITests", dependencies: ["csm", "CSMModels", "CSMShards", "CSMPipeline", "CSMLoader", "CSMFormats"]),
    ],
    swiftLanguageModes: [.v5]
)

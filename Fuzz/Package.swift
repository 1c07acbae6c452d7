// swift-tools-version:6.0
import PackageDescription

/// libFuzzer harnesses for csm's file parsers, kept in their own package so that
/// `swift build` and `make test` of csm never build them. Each harness is one executable
/// whose main hands its per-input function to libFuzzer (`LLVMFuzzerRunDriver`); it links
/// only with `-sanitize=fuzzer,address`. Build and run them with `make fuzz` from the repository root
/// (see Fuzz/README.md).
let package = Package(
    name: "csm-fuzz",
    dependencies: [.package(name: "csm", path: "..")],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver for the harnesses' main.swift.
        .target(name: "CFuzzDriver"),
        .executableTarget(name: "FuzzSafeTensors", dependencies: ["CFuzzDriver", .product(name: "CSMFormats", package: "csm")]),
        .executableTarget(name: "FuzzNumPy", dependencies: ["CFuzzDriver", .product(name: "CSMFormats", package: "csm")]),
        .executableTarget(name: "FuzzIDX", dependencies: ["CFuzzDriver", .product(name: "CSMImport", package: "csm")]),
        .executableTarget(name: "FuzzManifest", dependencies: ["CFuzzDriver", .product(name: "CSMShards", package: "csm")]),
        .executableTarget(name: "FuzzShard", dependencies: [
            "CFuzzDriver", .product(name: "CSMShards", package: "csm"), .product(name: "CSMLoader", package: "csm"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)

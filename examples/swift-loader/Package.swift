// swift-tools-version:6.0
import PackageDescription

/// A program of another package that reads csm's shards with the CSMLoader library. It
/// depends on the csm checkout two folders up; a package of your own names a tagged copy
/// instead:
///
///     .package(url: "https://example.org/your/csm.git", from: "0.1.0")
///
/// tools/packaging/test_dependency.sh builds this program both ways (by path, and against a
/// tagged git copy of csm by version) and runs it on shards `csm generate` wrote.
let package = Package(
    name: "shard-stats",
    dependencies: [.package(name: "csm", path: "../..")],
    targets: [
        .executableTarget(name: "shard-stats", dependencies: [.product(name: "CSMLoader", package: "csm")],
                          path: "Sources/ShardStats"),
    ]
)

#!/bin/bash
# The library products as another package uses them: examples/swift-loader (a program that
# reads shards with CSMLoader) is built twice — against this checkout by path, as shipped,
# and against a tagged git copy of it by version (`.package(url: "file://…", from: "0.1.0")`,
# where SwiftPM refuses any target with unsafeFlags; this build names every library
# product) — and both builds must print the same summary of shards `csm generate` wrote.
# Part of `make test`; a few minutes (each build compiles swift-crypto and csm's libraries).
#
# Usage: tools/packaging/test_dependency.sh [CSM]   (CSM: the csm binary, .build/release/csm by default)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
csm=${1:-$root/.build/release/csm}
work=$(mktemp -d /tmp/csm-dependency.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$SECONDS

echo "test-dependency: shards from csm generate"
"$csm" generate --out "$work/data" --pairs 7:9 --groups-per-pair 4 > "$work/generate.log" 2>&1 \
  || { cat "$work/generate.log"; exit 1; }

echo "test-dependency: examples/swift-loader against this checkout by path"
swift build -c release --package-path "$root/examples/swift-loader" --scratch-path "$work/build-path" > "$work/build-path.log" 2>&1 \
  || { cat "$work/build-path.log"; exit 1; }
"$work/build-path/release/shard-stats" "$work/data" | tee "$work/by-path.txt"

echo "test-dependency: the same program against a tagged git copy of csm, by version"
mkdir "$work/csm"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -x -C "$work/csm"
git -C "$work/csm" init -q
git -C "$work/csm" add -A
git -C "$work/csm" -c user.name=csm -c user.email=csm@localhost commit -q -m "csm, as tested"
git -C "$work/csm" tag 0.1.0
mkdir -p "$work/consumer"
cp -R "$root/examples/swift-loader/Sources" "$work/consumer/"
cat > "$work/consumer/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "shard-stats",
    dependencies: [.package(url: "file://$work/csm", from: "0.1.0")],
    targets: [
        // Every library product, so that any unsafe flag in what they reach fails the build.
        .executableTarget(name: "shard-stats", dependencies: [
            .product(name: "CSMLoader", package: "csm"), .product(name: "CSMShards", package: "csm"),
            .product(name: "CSMCalibration", package: "csm"), .product(name: "CSMFormats", package: "csm"),
            .product(name: "CSMImport", package: "csm"),
        ], path: "Sources/ShardStats"),
    ]
)
SWIFT
swift build -c release --package-path "$work/consumer" --scratch-path "$work/build-tagged" > "$work/build-tagged.log" 2>&1 \
  || { cat "$work/build-tagged.log"; exit 1; }
"$work/build-tagged/release/shard-stats" "$work/data" > "$work/by-version.txt"

cmp "$work/by-path.txt" "$work/by-version.txt" \
  || { echo "test-dependency: the two builds disagree"; diff "$work/by-path.txt" "$work/by-version.txt"; exit 1; }
grep -q "^32 samples in " "$work/by-path.txt" || { echo "test-dependency: expected 32 samples"; exit 1; }
echo "test-dependency passed in $((SECONDS - start)) s"

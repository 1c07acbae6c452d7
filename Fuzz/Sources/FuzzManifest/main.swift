import CFuzzDriver
import CSMShards
import Foundation

/// Parses arbitrary bytes as a `manifest.json`; a manifest that decodes must encode and
/// decode back to itself; its missing shards are listed and described as `csm inspect` does. Then resolves a directory holding those bytes as its manifest,
/// as the loader, inspect and merge do. Errors are expected; crashes and round-trip
/// mismatches are bugs.
let directory = NSTemporaryDirectory() + "csm-fuzz-manifest-\(getpid())"
let manifestPath = directory + "/manifest.json"

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    guard let manifest = try? Manifest.decode(bytes, path: "fuzz/manifest.json") else { return 0 }
    if let encoded = try? manifest.encoded() {
        guard let again = try? Manifest.decode(encoded), again == manifest else {
            fatalError("manifest does not survive encode → decode:\n\(String(decoding: encoded, as: UTF8.self))")
        }
    }
    _ = manifest.totalCount
    if let expected = manifest.expectedShardCount {
        let missing = manifest.missingShardIndices
        if !missing.isEmpty { _ = Manifest.describeMissing(missing, of: expected) }
    }
    if FileManager.default.createFile(atPath: manifestPath, contents: bytes) {
        _ = try? ShardPaths(resolving: directory)
    }
    return 0
}

try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) }
try? FileManager.default.removeItem(atPath: directory)
exit(status)

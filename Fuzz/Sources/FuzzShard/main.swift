import CFuzzDriver
import CSMLoader
import CSMShards
import Foundation

/// Writes arbitrary bytes to a file and opens it as a csm-shard/1 shard (HDF5 needs a
/// path): validation, every dataset read in full (`verify`), chunk locations, a row range,
/// then the loader's `ShardSet`, which checks the values that index anything. Errors are
/// expected; crashes are bugs (see Fuzz/README.md for crashes inside libhdf5 itself).
let directory = NSTemporaryDirectory() + "csm-fuzz-shard-\(getpid())"
let shardPath = directory + "/fuzz.h5"

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    guard FileManager.default.createFile(atPath: shardPath, contents: bytes),
          let reader = try? ShardReader(path: shardPath) else { return 0 }
    _ = try? reader.verify()
    for dataset in ShardDataset.allCases { _ = try? reader.storageRanges(of: dataset) }
    _ = try? reader.read(rows: 0..<min(reader.count, 2))
    _ = try? reader.columns()
    if let set = try? ShardSet(path: shardPath), set.count > 0 {
        _ = try? set.image(0)
        _ = set.label(0)
    }
    return 0
}

try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) }
try? FileManager.default.removeItem(atPath: directory)
exit(status)

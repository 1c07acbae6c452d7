import CFuzzDriver
import CSMImport
import Foundation

/// Parses arbitrary bytes as an IDX images file and as an IDX labels file. Inputs that
/// start with the gzip magic also go through a file and `GzipFile` (zlib), as
/// `csm import idx` reads `*.gz` files. Errors are expected; crashes are bugs.
let gzipPath = NSTemporaryDirectory() + "csm-fuzz-idx-\(getpid()).gz"

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    _ = try? IDXReader.parseImages(bytes, path: "fuzz-images")
    _ = try? IDXReader.parseLabels(bytes, path: "fuzz-labels")
    if bytes.starts(with: [0x1F, 0x8B]), FileManager.default.createFile(atPath: gzipPath, contents: Data(bytes)) {
        _ = try? IDXReader.readImages(gzipPath)
        _ = try? IDXReader.readLabels(gzipPath)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) }
unlink(gzipPath)
exit(status)

import CFuzzDriver
import CSMFormats
import Foundation

/// Parses arbitrary bytes as a safetensors file, then reads every tensor and the metadata
/// the way the model loaders do. Errors are expected; crashes are bugs.
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    guard let file = try? SafeTensorsFile(bytes: bytes, path: "fuzz.safetensors") else { return 0 }
    for name in file.names {
        _ = try? file.floats(name)
        _ = try? file.integers(name)
        if let shape = try? file.shape(of: name) { _ = try? file.floats(name, shape: shape) }
    }
    _ = try? file.metadataStrings("class_names", count: 10, countName: "the class count")
    for key in file.metadata.keys { _ = try? file.metadataJSON(key) }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) })

import CFuzzDriver
import CSMFormats
import Foundation

/// Parses arbitrary bytes as a .npy file, once as a whole `Data` and once as a slice whose
/// indices do not start at zero (as a memory-mapped or sliced buffer may), then reads the
/// elements every way the calibration commands do. Errors are expected; crashes are bugs.
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let whole = Data(UnsafeBufferPointer(start: data, count: size))
    let padded = Data([0x2A]) + whole
    for bytes in [whole, padded[1...]] {
        guard let array = try? NumPyArray(data: bytes, path: "fuzz.npy") else { continue }
        _ = array.floats()
        _ = array.doubles()
        _ = try? array.integers()
        _ = try? array.withFloat32Elements { $0.reduce(0, +) }
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) })

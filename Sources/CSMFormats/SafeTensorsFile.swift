import Foundation

/// A safetensors file (8-byte little-endian header length, JSON header, raw
/// little-endian tensor data), mapped into memory (pages are read as tensors are converted,
/// never copied whole) and validated strictly: every offset lies
/// inside the data, every tensor's byte count matches its dtype and shape, tensors do not
/// overlap, and the metadata is a string-to-string map. Nothing is read out of bounds.
public struct SafeTensorsFile: Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        /// Byte range within the data section.
        public let range: Range<Int>

        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// The path the file was read from (used in error messages).
    public let path: String
    /// The `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    /// Header entries by tensor name.
    public let entries: [String: Entry]
    /// The whole file: memory-mapped when read from a path.
    private let bytes: Data
    private let dataStart: Int

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Largest JSON header csm accepts (the format itself caps it at 100 MB).
    static let maximumHeaderLength = 100_000_000

    /// Maps and validates the file at `path`.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw FileError(path, "no such file") }
        guard !isDirectory.boolValue else { throw FileError(path, "is a directory, not a safetensors file") }
        // Mapped where the file system allows it, else read whole.
        let url = URL(fileURLWithPath: path)
        guard let data = (try? Data(contentsOf: url, options: .alwaysMapped)) ?? (try? Data(contentsOf: url)) else {
            throw FileError(path, "cannot be read")
        }
        try self.init(data: data, path: path)
    }

    /// Parses an in-memory safetensors image; `path` only names it in errors.
    public init(bytes: [UInt8], path: String = "<bytes>") throws {
        try self.init(data: Data(bytes), path: path)
    }

    private init(data bytes: Data, path: String) throws {
        self.path = path
        self.bytes = bytes
        guard !bytes.isEmpty else { throw FileError(path, "empty file") }
        guard bytes.count >= 8 else {
            throw FileError(path, "truncated: \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            throw FileError(path, "header length \(headerLength) is absurd (limit \(SafeTensorsFile.maximumHeaderLength) bytes); not a safetensors file?")
        }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw FileError(path, "truncated: header claims \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        dataStart = 8 + Int(headerLength)
        let dataLength = bytes.count - dataStart

        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]), options: [])
        } catch {
            throw FileError(path, "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else {
            throw FileError(path, "header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw FileError(path, "__metadata__ is not a JSON object")
                }
                for (key, item) in map {
                    guard let text = item as? String else {
                        throw FileError(path, "metadata value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try SafeTensorsFile.parseEntry(name: name, value: value, dataLength: dataLength, path: path)
        }

        let sorted = entries.sorted { $0.value.range.lowerBound < $1.value.range.lowerBound }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.value.range.lowerBound < previous.value.range.upperBound {
            throw FileError(path, "tensors '\(previous.key)' and '\(next.key)' overlap in the data section")
        }
        self.metadata = metadata
        self.entries = entries
    }

    private static func parseEntry(name: String, value: Any, dataLength: Int, path: String) throws -> Entry {
        guard let object = value as? [String: Any] else {
            throw FileError(path, "tensor '\(name)': header entry is not a JSON object")
        }
        guard let dtypeName = object["dtype"] as? String else {
            throw FileError(path, "tensor '\(name)': missing dtype")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw FileError(path, "tensor '\(name)': unknown dtype '\(dtypeName)'")
        }
        guard let shapeValues = object["shape"] as? [Any] else {
            throw FileError(path, "tensor '\(name)': missing shape")
        }
        var shape: [Int] = []
        var count = 1
        for item in shapeValues {
            guard let number = item as? NSNumber, let dimension = Int(exactly: number.doubleValue), dimension >= 0,
                  dimension <= Int(Int32.max) else {
                throw FileError(path, "tensor '\(name)': shape \(shapeValues) is not a list of non-negative integers")
            }
            shape.append(dimension)
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= Int(UInt32.max) * 16 else {
                throw FileError(path, "tensor '\(name)': shape \(shape) is absurdly large")
            }
            count = product
        }
        guard let offsets = object["data_offsets"] as? [Any], offsets.count == 2,
              let beginNumber = offsets[0] as? NSNumber, let endNumber = offsets[1] as? NSNumber,
              let begin = Int(exactly: beginNumber.doubleValue), let end = Int(exactly: endNumber.doubleValue) else {
            throw FileError(path, "tensor '\(name)': data_offsets is not a pair of integers")
        }
        guard begin >= 0, begin <= end else {
            throw FileError(path, "tensor '\(name)': data_offsets [\(begin), \(end)] are not increasing")
        }
        guard end <= dataLength else {
            throw FileError(path, "tensor '\(name)': data_offsets end \(end) lies past the end of the data (\(dataLength) bytes); file truncated?")
        }
        guard end - begin == count * dtype.size else {
            throw FileError(path, "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(count * dtype.size) bytes but data_offsets give \(end - begin)")
        }
        return Entry(dtype: dtype, shape: shape, range: begin..<end)
    }

    /// The header entry of `name`, or a "missing tensor" error.
    public func entry(_ name: String) throws -> Entry {
        guard let entry = entries[name] else { throw FileError(path, "missing tensor '\(name)'") }
        return entry
    }

    /// The shape of tensor `name`.
    public func shape(of name: String) throws -> [Int] { try entry(name).shape }

    /// True when the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// Tensor `name` converted to `Float` (from F32, F16, BF16 or F64), in row-major order.
    public func floats(_ name: String) throws -> [Float] {
        let entry = try entry(name)
        let count = entry.elementCount
        let start = dataStart + entry.range.lowerBound
        return try bytes.withUnsafeBytes { raw -> [Float] in
            let base = raw.baseAddress! + start
            switch entry.dtype {
            case .f32:
                return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                    initialized = count
                }
            case .f16:
                return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    for i in 0..<count { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
                    initialized = count
                }
            case .bf16:
                return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    for i in 0..<count { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                    initialized = count
                }
            case .f64:
                return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                    for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                    initialized = count
                }
            default:
                throw FileError(path, "tensor '\(name)' is \(entry.dtype.rawValue), expected a floating-point tensor")
            }
        }
    }

    /// Tensor `name` as floats (see `floats(_:)`), refused when any element is NaN or ±Inf:
    /// a diverged or corrupted checkpoint is an error naming the tensor and the first bad
    /// element, never a network that computes garbage. One pass over the values.
    public func finiteFloats(_ name: String) throws -> [Float] {
        let values = try floats(name)
        if let index = values.firstIndex(where: { !$0.isFinite }) {
            let bad = values.lazy.filter { !$0.isFinite }.count
            throw FileError(path, tensor: name, "element \(index) is \(values[index])"
                            + (bad > 1 ? " (\(bad) of \(values.count) elements are not finite)" : "") + "; every value must be finite")
        }
        return values
    }

    /// Tensor `name` converted to `Int` (from I64, I32, I16, I8, U8, U16, U32 or BOOL).
    public func integers(_ name: String) throws -> [Int] {
        let entry = try entry(name)
        let count = entry.elementCount
        let start = dataStart + entry.range.lowerBound
        return try bytes.withUnsafeBytes { raw -> [Int] in
            let base = raw.baseAddress! + start
            func read<T: FixedWidthInteger>(_ type: T.Type) throws -> [Int] {
                try (0..<count).map { i in
                    let value = T(littleEndian: base.loadUnaligned(fromByteOffset: MemoryLayout<T>.size * i, as: T.self))
                    // Only U64 can hold values beyond Int.max.
                    guard let exact = Int(exactly: value) else {
                        throw FileError(path, tensor: name, "holds \(value) at element \(i), larger than the largest Int")
                    }
                    return exact
                }
            }
            switch entry.dtype {
            case .i64: return try read(Int64.self)
            case .i32: return try read(Int32.self)
            case .i16: return try read(Int16.self)
            case .i8: return try read(Int8.self)
            case .u8, .bool: return try read(UInt8.self)
            case .u16: return try read(UInt16.self)
            case .u32: return try read(UInt32.self)
            case .u64: return try read(UInt64.self)
            default:
                throw FileError(path, "tensor '\(name)' is \(entry.dtype.rawValue), expected an integer tensor")
            }
        }
    }

    /// Tensor `name` as finite floats (see `finiteFloats(_:)`), checked against an expected shape.
    public func floats(_ name: String, shape expected: [Int]) throws -> [Float] {
        let shape = try shape(of: name)
        guard shape == expected else {
            throw FileError(path, "tensor '\(name)' has shape \(shape), expected \(expected)")
        }
        return try finiteFloats(name)
    }

    /// Checks that metadata `format` is `expected`.
    public func requireFormat(_ expected: String) throws {
        guard let format = metadata["format"] else { throw FileError(path, "metadata has no 'format' (expected \(expected))") }
        guard format == expected else { throw FileError(path, "format is '\(format)', expected \(expected)") }
    }

    /// Metadata `key` as a JSON list of strings (class names), nil when absent; `count`, if
    /// given, is the length it must have, described by `countName` in the error.
    public func metadataStrings(_ key: String, count: Int? = nil, countName: String = "") throws -> [String]? {
        guard let text = metadata[key] else { return nil }
        guard let list = ClassNames.parse(text) else {
            throw FileError(path, "metadata '\(key)' is not a JSON list of strings")
        }
        if let count, list.count != count {
            throw FileError(path, "metadata '\(key)' has \(list.count) names but \(countName) is \(count)")
        }
        return list
    }

    /// Metadata value `key` parsed as JSON.
    public func metadataJSON(_ key: String) throws -> Any {
        guard let text = metadata[key] else { throw FileError(path, "metadata has no '\(key)' entry") }
        do {
            return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw FileError(path, "metadata '\(key)' is not valid JSON")
        }
    }
}

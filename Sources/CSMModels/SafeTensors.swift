import Foundation

/// An error in a model or tensor file. Its description is one line that names the file.
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file at fault.
    public let path: String
    /// What is wrong with it.
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// Element types of the safetensors format.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// True for the floating-point types csm converts to `Float`.
    public var isFloatingPoint: Bool { [.f64, .f32, .f16, .bf16].contains(self) }
}

/// A safetensors file (8-byte little-endian header length, JSON header, raw
/// little-endian tensor data), read whole and validated strictly: every offset lies
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
    private let bytes: [UInt8]
    private let dataStart: Int

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Largest JSON header csm accepts (the format itself caps it at 100 MB).
    static let maximumHeaderLength = 100_000_000

    /// Reads and validates the file at `path`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw ModelFileError(path, isDirectory.boolValue ? "is a directory, not a safetensors file" : "cannot be read")
            }
            throw ModelFileError(path, "no such file")
        }
        try self.init(bytes: [UInt8](data), path: path)
    }

    /// Parses an in-memory safetensors image; `path` only names it in errors.
    public init(bytes: [UInt8], path: String) throws {
        self.path = path
        self.bytes = bytes
        guard !bytes.isEmpty else { throw ModelFileError(path, "empty file") }
        guard bytes.count >= 8 else {
            throw ModelFileError(path, "truncated: \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            throw ModelFileError(path, "header length \(headerLength) is absurd (limit \(SafeTensorsFile.maximumHeaderLength) bytes); not a safetensors file?")
        }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw ModelFileError(path, "truncated: header claims \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        dataStart = 8 + Int(headerLength)
        let dataLength = bytes.count - dataStart

        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]), options: [])
        } catch {
            throw ModelFileError(path, "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else {
            throw ModelFileError(path, "header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw ModelFileError(path, "__metadata__ is not a JSON object")
                }
                for (key, item) in map {
                    guard let text = item as? String else {
                        throw ModelFileError(path, "metadata value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try SafeTensorsFile.parseEntry(name: name, value: value, dataLength: dataLength, path: path)
        }

        let sorted = entries.sorted { $0.value.range.lowerBound < $1.value.range.lowerBound }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.value.range.lowerBound < previous.value.range.upperBound {
            throw ModelFileError(path, "tensors '\(previous.key)' and '\(next.key)' overlap in the data section")
        }
        self.metadata = metadata
        self.entries = entries
    }

    private static func parseEntry(name: String, value: Any, dataLength: Int, path: String) throws -> Entry {
        guard let object = value as? [String: Any] else {
            throw ModelFileError(path, "tensor '\(name)': header entry is not a JSON object")
        }
        guard let dtypeName = object["dtype"] as? String else {
            throw ModelFileError(path, "tensor '\(name)': missing dtype")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw ModelFileError(path, "tensor '\(name)': unknown dtype '\(dtypeName)'")
        }
        guard let shapeValues = object["shape"] as? [Any] else {
            throw ModelFileError(path, "tensor '\(name)': missing shape")
        }
        var shape: [Int] = []
        var count = 1
        for item in shapeValues {
            guard let number = item as? NSNumber, let dimension = Int(exactly: number.doubleValue), dimension >= 0,
                  dimension <= Int(Int32.max) else {
                throw ModelFileError(path, "tensor '\(name)': shape \(shapeValues) is not a list of non-negative integers")
            }
            shape.append(dimension)
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= Int(UInt32.max) * 16 else {
                throw ModelFileError(path, "tensor '\(name)': shape \(shape) is absurdly large")
            }
            count = product
        }
        guard let offsets = object["data_offsets"] as? [Any], offsets.count == 2,
              let beginNumber = offsets[0] as? NSNumber, let endNumber = offsets[1] as? NSNumber,
              let begin = Int(exactly: beginNumber.doubleValue), let end = Int(exactly: endNumber.doubleValue) else {
            throw ModelFileError(path, "tensor '\(name)': data_offsets is not a pair of integers")
        }
        guard begin >= 0, begin <= end else {
            throw ModelFileError(path, "tensor '\(name)': data_offsets [\(begin), \(end)] are not increasing")
        }
        guard end <= dataLength else {
            throw ModelFileError(path, "tensor '\(name)': data_offsets end \(end) lies past the end of the data (\(dataLength) bytes); file truncated?")
        }
        guard end - begin == count * dtype.size else {
            throw ModelFileError(path, "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(count * dtype.size) bytes but data_offsets give \(end - begin)")
        }
        return Entry(dtype: dtype, shape: shape, range: begin..<end)
    }

    /// The header entry of `name`, or a "missing tensor" error.
    public func entry(_ name: String) throws -> Entry {
        guard let entry = entries[name] else { throw ModelFileError(path, "missing tensor '\(name)'") }
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
                throw ModelFileError(path, "tensor '\(name)' is \(entry.dtype.rawValue), expected a floating-point tensor")
            }
        }
    }

    /// Tensor `name` converted to `Int` (from I64, I32, I16, I8, U8, U16, U32 or BOOL).
    public func integers(_ name: String) throws -> [Int] {
        let entry = try entry(name)
        let count = entry.elementCount
        let start = dataStart + entry.range.lowerBound
        return try bytes.withUnsafeBytes { raw -> [Int] in
            let base = raw.baseAddress! + start
            func read<T: FixedWidthInteger>(_ type: T.Type) -> [Int] {
                (0..<count).map { Int(T(littleEndian: base.loadUnaligned(fromByteOffset: MemoryLayout<T>.size * $0, as: T.self))) }
            }
            switch entry.dtype {
            case .i64: return read(Int64.self)
            case .i32: return read(Int32.self)
            case .i16: return read(Int16.self)
            case .i8: return read(Int8.self)
            case .u8, .bool: return read(UInt8.self)
            case .u16: return read(UInt16.self)
            case .u32: return read(UInt32.self)
            case .u64:
                let values = read(UInt64.self)
                return values
            default:
                throw ModelFileError(path, "tensor '\(name)' is \(entry.dtype.rawValue), expected an integer tensor")
            }
        }
    }

    /// Tensor `name` as floats, checked against an expected shape.
    public func floats(_ name: String, shape expected: [Int]) throws -> [Float] {
        let shape = try shape(of: name)
        guard shape == expected else {
            throw ModelFileError(path, "tensor '\(name)' has shape \(shape), expected \(expected)")
        }
        return try floats(name)
    }

    /// Checks that metadata `format` is `expected`.
    public func requireFormat(_ expected: String) throws {
        guard let format = metadata["format"] else { throw ModelFileError(path, "metadata has no 'format' (expected \(expected))") }
        guard format == expected else { throw ModelFileError(path, "format is '\(format)', expected \(expected)") }
    }

    /// Metadata `key` as a JSON list of strings (class names), nil when absent; `count`, if
    /// given, is the length it must have, described by `countName` in the error.
    public func metadataStrings(_ key: String, count: Int? = nil, countName: String = "") throws -> [String]? {
        guard let text = metadata[key] else { return nil }
        guard let list = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String] else {
            throw ModelFileError(path, "metadata '\(key)' is not a JSON list of strings")
        }
        if let count, list.count != count {
            throw ModelFileError(path, "metadata '\(key)' has \(list.count) names but \(countName) is \(count)")
        }
        return list
    }

    /// Metadata value `key` parsed as JSON.
    public func metadataJSON(_ key: String) throws -> Any {
        guard let text = metadata[key] else { throw ModelFileError(path, "metadata has no '\(key)' entry") }
        do {
            return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw ModelFileError(path, "metadata '\(key)' is not valid JSON")
        }
    }
}

/// Writes safetensors files. Tensors are stored in the order given; the file appears
/// under its final name only once complete (written to a temporary name, then renamed).
public struct SafeTensorsWriter {
    /// A tensor to write: name, shape and values, stored as `dtype` (F32, F16 or BF16).
    public struct Item {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public var dtype: SafeTensorsDType

        public init(name: String, shape: [Int], values: [Float], dtype: SafeTensorsDType = .f32) {
            self.name = name
            self.shape = shape
            self.values = values
            self.dtype = dtype
        }
    }

    /// Encodes `items` and `metadata` as safetensors bytes.
    public static func encode(_ items: [Item], metadata: [String: String] = [:]) throws -> [UInt8] {
        var headerParts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            headerParts.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for item in items {
            guard item.values.count == item.shape.reduce(1, *) else {
                throw ModelFileError(item.name, "\(item.values.count) values do not fill shape \(item.shape)")
            }
            guard [.f32, .f16, .bf16].contains(item.dtype) else {
                throw ModelFileError(item.name, "cannot write dtype \(item.dtype.rawValue)")
            }
            let length = item.values.count * item.dtype.size
            let shape = item.shape.map(String.init).joined(separator: ",")
            headerParts.append("\(jsonString(item.name)):{\"dtype\":\"\(item.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + length)]}")
            offset += length
        }
        var header = Array("{\(headerParts.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        var length = UInt64(header.count)
        for _ in 0..<8 { out.append(UInt8(length & 0xff)); length >>= 8 }
        out += header
        for item in items {
            switch item.dtype {
            case .f16:
                for value in item.values { appendLittleEndian(Float16(value).bitPattern, to: &out) }
            case .bf16:
                for value in item.values {
                    let bits = value.bitPattern
                    let rounded = bits &+ 0x7fff &+ ((bits >> 16) & 1)   // round to nearest even
                    appendLittleEndian(UInt16(truncatingIfNeeded: (value.isNaN ? bits : rounded) >> 16), to: &out)
                }
            default:
                for value in item.values { appendLittleEndian(value.bitPattern, to: &out) }
            }
        }
        return out
    }

    /// Writes `items` to `path` atomically.
    public static func write(_ items: [Item], metadata: [String: String] = [:], to path: String) throws {
        let bytes = try encode(items, metadata: metadata)
        try writeAtomically(bytes, to: path)
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { out.append(contentsOf: $0) }
    }

    private static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 { result += String(format: "\\u%04x", scalar.value) } else { result.unicodeScalars.append(scalar) }
            }
        }
        return result + "\""
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place, so a
/// reader never sees a half-written file under the final name.
public func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let temporary = url.deletingLastPathComponent()
        .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
    do {
        try Data(bytes).write(to: temporary)
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw ModelFileError(path, "cannot write: \((error as NSError).localizedDescription)")
    }
    if rename(temporary.path, url.path) != 0 {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: temporary)
        throw ModelFileError(path, "cannot rename into place: \(reason)")
    }
}

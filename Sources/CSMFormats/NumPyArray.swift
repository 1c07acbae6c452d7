import Foundation

/// A strict reader for NumPy's .npy format (versions 1–3): little-endian float32, float64,
/// int64 or int32 arrays in C order, as written by `numpy.save`. Anything else — other
/// dtypes, Fortran order, object arrays, truncated or oversized data — is refused with a
/// `FileError` naming the file.
public struct NumPyArray: Sendable {
    /// Element types csm reads, by their NumPy `descr`.
    public enum DType: String, Sendable, CaseIterable {
        case float32 = "<f4"
        case float64 = "<f8"
        case int64 = "<i8"
        case int32 = "<i4"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .float32, .int32: return 4
            case .float64, .int64: return 8
            }
        }

        /// Whether the elements are floating point.
        public var isFloatingPoint: Bool { self == .float32 || self == .float64 }
    }

    /// Where the array came from, for messages.
    public let path: String
    public let dtype: DType
    /// The array's shape; empty for a 0-d (scalar) array.
    public let shape: [Int]
    /// The raw little-endian element bytes.
    private let payload: Data

    /// Number of elements (the product of the shape).
    public var elementCount: Int { shape.reduce(1, *) }

    /// Reads and checks the file at `path` (memory-mapped, so large arrays load quickly).
    public init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
            throw FileError(path, reason)
        }
        try self.init(data: data, path: path)
    }

    /// Parses .npy bytes; `path` names them in errors.
    public init(data: Data, path: String = "<bytes>") throws {
        self.path = path
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard data.count >= 10, Array(data.prefix(6)) == magic else {
            throw FileError(path, "not a .npy file (missing the \\x93NUMPY magic)")
        }
        let start = data.startIndex
        let major = data[start + 6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(data[start + 8]) | Int(data[start + 9]) << 8
            headerStart = 10
        case 2, 3:
            guard data.count >= 12 else { throw FileError(path, "truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(data[start + 8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw FileError(path, "unsupported .npy format version \(major).\(data[start + 7])")
        }
        guard data.count >= headerStart + headerLength else { throw FileError(path, "truncated .npy header") }
        let headerBytes = data[(start + headerStart)..<(start + headerStart + headerLength)]
        guard let header = String(data: headerBytes, encoding: major == 3 ? .utf8 : .ascii) else {
            throw FileError(path, "the .npy header is not text")
        }
        let fields: [String: NumPyHeaderParser.Value]
        do {
            var parser = NumPyHeaderParser(header)
            fields = try parser.parseDictionary()
        } catch let problem as NumPyHeaderParser.Problem {
            throw FileError(path, "malformed .npy header (\(problem.message)): \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard Set(fields.keys) == ["descr", "fortran_order", "shape"] else {
            throw FileError(path, "the .npy header must have exactly descr, fortran_order and shape, found \(fields.keys.sorted())")
        }
        guard case .string(let descr)? = fields["descr"] else { throw FileError(path, "descr is not a string") }
        guard let dtype = DType(rawValue: descr) else {
            let supported = DType.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            throw FileError(path, "unsupported dtype '\(descr)' (csm reads \(supported))")
        }
        guard case .bool(let fortran)? = fields["fortran_order"] else {
            throw FileError(path, "fortran_order is not True or False")
        }
        guard !fortran else { throw FileError(path, "Fortran-order arrays are not supported; save a C-order copy (numpy.ascontiguousarray)") }
        guard case .tuple(let shape)? = fields["shape"] else { throw FileError(path, "shape is not a tuple of integers") }
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw FileError(path, "shape \(shape) is too large") }
            count = product
        }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw FileError(path, "shape \(shape) is too large") }
        let available = data.count - headerStart - headerLength
        guard available == expected else {
            throw FileError(path, "shape \(shape) of \(descr) needs \(expected) data bytes, the file has \(available)")
        }
        self.dtype = dtype
        self.shape = shape
        payload = data.suffix(from: start + headerStart + headerLength)
    }

    /// The elements as Float (float64 rounds; integers convert).
    public func floats() -> [Float] {
        switch dtype {
        case .float32: return copy(Float.self)
        case .float64: return copy(Double.self).map { Float($0) }
        case .int64: return copy(Int64.self).map { Float($0) }
        case .int32: return copy(Int32.self).map { Float($0) }
        }
    }

    /// The elements as Double.
    public func doubles() -> [Double] {
        switch dtype {
        case .float32: return copy(Float.self).map { Double($0) }
        case .float64: return copy(Double.self)
        case .int64: return copy(Int64.self).map { Double($0) }
        case .int32: return copy(Int32.self).map { Double($0) }
        }
    }

    /// The elements as Int; only for integer arrays.
    public func integers() throws -> [Int] {
        switch dtype {
        case .int64: return copy(Int64.self).map { Int($0) }
        case .int32: return copy(Int32.self).map { Int($0) }
        case .float32, .float64: throw FileError(path, "expected an integer array, found \(dtype.rawValue)")
        }
    }

    /// Calls `body` with the float32 elements in place, without copying them (the file stays
    /// memory-mapped); for large logits this saves an allocation as big as the file.
    /// Throws when the array is not float32.
    public func withFloat32Elements<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard dtype == .float32 else { throw FileError(path, "expected a float32 array, found \(dtype.rawValue)") }
        let count = elementCount
        return try payload.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else {
                // Unaligned (or empty) data: fall back to a copy.
                return try floats().withUnsafeBufferPointer(body)
            }
            return try body(UnsafeBufferPointer(start: base.bindMemory(to: Float.self, capacity: count), count: count))
        }
    }

    /// Copies the little-endian payload into an array of `T` (csm runs on little-endian hosts).
    private func copy<T>(_: T.Type) -> [T] {
        let count = elementCount
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            payload.withUnsafeBytes { raw in
                if count > 0 {
                    memcpy(buffer.baseAddress!, raw.baseAddress!, count * MemoryLayout<T>.size)
                }
            }
            initialized = count
        }
    }
}

/// Parses the Python dict literal of a .npy header:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
struct NumPyHeaderParser {
    enum Value: Equatable {
        case string(String)
        case bool(Bool)
        case tuple([Int])
    }

    struct Problem: Error {
        var message: String
    }

    private let characters: [Character]
    private var position = 0

    init(_ text: String) {
        characters = Array(text)
    }

    mutating func parseDictionary() throws -> [String: Value] {
        var result: [String: Value] = [:]
        try expect("{")
        while true {
            skipSpace()
            if peek() == "}" { position += 1; break }
            let key = try parseString()
            try expect(":")
            guard result[key] == nil else { throw Problem(message: "key '\(key)' appears twice") }
            result[key] = try parseValue()
            skipSpace()
            if peek() == "," { position += 1; continue }
            try expect("}")
            break
        }
        skipSpace()
        guard position == characters.count else { throw Problem(message: "text after the closing brace") }
        return result
    }

    private mutating func parseValue() throws -> Value {
        skipSpace()
        switch peek() {
        case "'", "\"": return .string(try parseString())
        case "(": return .tuple(try parseTuple())
        default:
            let word = readWhile { $0.isLetter }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            default: throw Problem(message: "unexpected value '\(word.isEmpty ? String(peek() ?? " ") : word)'")
            }
        }
    }

    private mutating func parseString() throws -> String {
        skipSpace()
        guard let quote = peek(), quote == "'" || quote == "\"" else { throw Problem(message: "expected a quoted string") }
        position += 1
        let text = readWhile { $0 != quote }
        guard peek() == quote else { throw Problem(message: "unterminated string") }
        position += 1
        return text
    }

    private mutating func parseTuple() throws -> [Int] {
        try expect("(")
        var items: [Int] = []
        while true {
            skipSpace()
            if peek() == ")" { position += 1; return items }
            let digits = readWhile { $0.isASCII && $0.isNumber }
            guard let value = Int(digits) else { throw Problem(message: "shape entries must be non-negative integers") }
            items.append(value)
            skipSpace()
            if peek() == "," { position += 1; continue }
            try expect(")")
            return items
        }
    }

    private mutating func expect(_ character: Character) throws {
        skipSpace()
        guard peek() == character else { throw Problem(message: "expected '\(character)'") }
        position += 1
    }

    private mutating func skipSpace() {
        while let c = peek(), c.isWhitespace { position += 1 }
    }

    private func peek() -> Character? {
        position < characters.count ? characters[position] : nil
    }

    private mutating func readWhile(_ predicate: (Character) -> Bool) -> String {
        let begin = position
        while let c = peek(), predicate(c) { position += 1 }
        return String(characters[begin..<position])
    }
}

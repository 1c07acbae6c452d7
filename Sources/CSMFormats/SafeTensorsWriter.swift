import Foundation

/// Writes safetensors files. Tensors are stored in the order given; the file appears
/// under its final name only once complete (through `AtomicFile`).
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
                throw FileError(item.name, "\(item.values.count) values do not fill shape \(item.shape)")
            }
            guard [.f32, .f16, .bf16].contains(item.dtype) else {
                throw FileError(item.name, "cannot write dtype \(item.dtype.rawValue)")
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
        try AtomicFile.write(try encode(items, metadata: metadata), to: path)
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

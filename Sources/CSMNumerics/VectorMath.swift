/// Vectorised elementary functions on SIMD16<Float>, accurate to a few ulp.
public enum VectorMath {
    public typealias V = SIMD16<Float>

    /// e^x. Range reduction by ln 2 and a degree-6 polynomial; inputs are clamped to
    /// [-87.3, 88.7] (results below 2^-126 flush towards zero).
    @inline(__always)
    public static func exp(_ x: V) -> V {
        // Only plain arithmetic and bit casts: Swift's generic SIMD rounding and
        // conversions are scalar loops. Adding 1.5·2^23 rounds to the nearest integer and
        // leaves it in the low mantissa bits.
        let clamped = pointwiseMin(pointwiseMax(x, V(repeating: -87.3)), V(repeating: 88.7))
        let shifted = clamped * 1.44269504088896341 + 12582912.0
        let n = shifted - 12582912.0
        var r = clamped - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let e = p * (r * r) + r + 1
        let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return e * unsafeBitCast(bits, to: V.self)
    }

    /// x · sigmoid(x).
    @inline(__always)
    public static func silu(_ x: V) -> V {
        x / (1 + exp(-x))
    }

    /// Scalar SiLU (reference precision, through the vector path for consistency).
    @inline(__always)
    public static func silu(_ x: Float) -> Float {
        silu(V(repeating: x))[0]
    }
}

/// Applies `body` to `count` floats in place, 16 at a time; the tail is padded.
@inline(__always)
func mapInPlace(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ body: (SIMD16<Float>) -> SIMD16<Float>) {
    var i = 0
    while i + 16 <= count {
        let v = UnsafeMutableRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(p + i).storeBytes(of: body(v), as: SIMD16<Float>.self)
        i += 16
    }
    if i < count {
        var v = SIMD16<Float>()
        for j in 0..<(count - i) { v[j] = p[i + j] }
        let r = body(v)
        for j in 0..<(count - i) { p[i + j] = r[j] }
    }
}

extension FeatureMap {
    /// SiLU in place.
    public mutating func applySiLU() {
        let count = values.count
        values.withUnsafeMutableBufferPointer { buffer in
            mapInPlace(buffer.baseAddress!, count) { VectorMath.silu($0) }
        }
    }

    /// self = (self + other) · scale, elementwise.
    public mutating func addScaled(_ other: FeatureMap, scale: Float) {
        kernelPrecondition(values.count == other.values.count, "addScaled: \(values.count) and \(other.values.count) values")
        let count = values.count
        values.withUnsafeMutableBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                let pa = a.baseAddress!, pb = b.baseAddress!
                if scale == 1 {
                    for i in 0..<count { pa[i] += pb[i] }
                } else {
                    for i in 0..<count { pa[i] = (pa[i] + pb[i]) * scale }
                }
            }
        }
    }

    /// Concatenates the channels of `self` and `other` (same count and size).
    public func concatenatingChannels(_ other: FeatureMap) -> FeatureMap {
        kernelPrecondition(count == other.count && height == other.height && width == other.width && hasConsistentShape
                           && other.hasConsistentShape, "concatenating channels: image counts or sizes differ")
        let c1 = channels, c2 = other.channels, c = c1 + c2
        var out = FeatureMap(uninitializedCount: count, height: height, width: width, channels: c)
        let rows = count * pixels
        out.values.withUnsafeMutableBufferPointer { o in
            values.withUnsafeBufferPointer { a in
                other.values.withUnsafeBufferPointer { b in
                    for r in 0..<rows {
                        (o.baseAddress! + r * c).update(from: a.baseAddress! + r * c1, count: c1)
                        (o.baseAddress! + r * c + c1).update(from: b.baseAddress! + r * c2, count: c2)
                    }
                }
            }
        }
        return out
    }
}

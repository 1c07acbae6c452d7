/// EDM's conversion of a sampled image (values near [−1, 1]) to 8-bit pixels, defined once:
/// uint8 = truncate(clip(x·127.5 + 128, 0, 255)). NaN becomes 255.
public enum PixelQuantization {
    /// The pixel of sample value `x`.
    @inlinable
    public static func uint8(_ x: Float) -> UInt8 {
        UInt8(max(0, min(255, x * 127.5 + 128)))
    }

    /// The pixels of sample values `values`, in the same order.
    public static func uint8<C: Collection>(_ values: C) -> [UInt8] where C.Element == Float {
        values.map(uint8)
    }
}

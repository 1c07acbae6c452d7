/// An 8-bit RGBA colour. `a` is opacity: 255 paints over, 0 leaves the canvas unchanged.
public struct Color: Equatable, Hashable, Sendable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8
    public var a: UInt8

    public init(r: UInt8, g: UInt8, b: UInt8, a: UInt8 = 255) {
        self.r = r
        self.g = g
        self.b = b
        self.a = a
    }

    /// A colour from a 0xRRGGBB literal, e.g. `Color(hex: 0x1f77b4)`.
    public init(hex: UInt32, alpha: UInt8 = 255) {
        self.init(r: UInt8((hex >> 16) & 0xff), g: UInt8((hex >> 8) & 0xff), b: UInt8(hex & 0xff), a: alpha)
    }

    /// A grey level (0 black, 255 white).
    public init(gray: UInt8, alpha: UInt8 = 255) {
        self.init(r: gray, g: gray, b: gray, a: alpha)
    }

    /// The same colour with another opacity.
    public func withAlpha(_ alpha: UInt8) -> Color {
        Color(r: r, g: g, b: b, a: alpha)
    }

    public static let black = Color(gray: 0)
    public static let white = Color(gray: 255)
    public static let clear = Color(r: 0, g: 0, b: 0, a: 0)
}

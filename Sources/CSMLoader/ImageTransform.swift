import CSMRandom

/// What turns stored uint8 HWC pixels into a float CHW training input:
/// x = (pixel·scale − mean[c]) / std[c], after an optional random crop (zero padding
/// `cropPadding` on each side, then a random H×W window) and random horizontal flip.
public struct ImageTransform: Sendable {
    /// Multiplies the uint8 pixel first (1/255 maps to [0, 1]).
    public var scale: Float
    /// Per-channel mean subtracted after scaling (empty: none).
    public var mean: [Float]
    /// Per-channel standard deviation divided by (empty: none).
    public var std: [Float]
    /// Zero padding on each side before a random crop back to H×W (0: no crop).
    public var cropPadding: Int
    /// Whether images are flipped left–right with probability 1/2.
    public var horizontalFlip: Bool

    /// Scales to [0, 1]; no normalisation, crop or flip.
    public init(scale: Float = 1 / 255, mean: [Float] = [], std: [Float] = [], cropPadding: Int = 0, horizontalFlip: Bool = false) {
        self.scale = scale
        self.mean = mean
        self.std = std
        self.cropPadding = cropPadding
        self.horizontalFlip = horizontalFlip
    }

    /// The usual training augmentation: crop with padding, flip, normalise.
    public static func training(mean: [Float], std: [Float], cropPadding: Int = 2) -> ImageTransform {
        ImageTransform(mean: mean, std: std, cropPadding: cropPadding, horizontalFlip: true)
    }

    /// Writes the transformed image (C·H·W floats) to `out`; `random` draws the crop offset
    /// and the flip.
    public func apply(_ pixels: ArraySlice<UInt8>, height h: Int, width w: Int, channels c: Int,
                      random: inout LoaderRandom, into out: UnsafeMutablePointer<Float>) {
        let p = cropPadding
        let dy = p > 0 ? Int(random.next() % UInt64(2 * p + 1)) - p : 0
        let dx = p > 0 ? Int(random.next() % UInt64(2 * p + 1)) - p : 0
        let flip = horizontalFlip && random.next() & 1 == 1
        var a = [Float](repeating: scale, count: c), b = [Float](repeating: 0, count: c)
        for ch in 0..<c {
            let m = ch < mean.count ? mean[ch] : (mean.count == 1 ? mean[0] : 0)
            let s = ch < std.count ? std[ch] : (std.count == 1 ? std[0] : 1)
            a[ch] = scale / s
            b[ch] = -m / s
        }
        // The hot loop: each output row is zero (padding) outside the columns whose source
        // pixel lies inside the image, and a strided copy with scale and shift inside them.
        let stride = flip ? -c : c
        let xLow = max(0, flip ? dx : -dx), xHigh = min(w, flip ? w + dx : w - dx)
        pixels.withUnsafeBufferPointer { source in
            guard let src = source.baseAddress else { return }
            for ch in 0..<c {
                let plane = out + ch * h * w
                let (gain, zero) = (a[ch], b[ch])
                for y in 0..<h {
                    let sy = y + dy
                    let row = plane + y * w
                    guard sy >= 0 && sy < h, xLow < xHigh else {
                        row.update(repeating: zero, count: w)
                        continue
                    }
                    row.update(repeating: zero, count: xLow)
                    (row + xHigh).update(repeating: zero, count: w - xHigh)
                    let firstX = (flip ? w - 1 - xLow : xLow) + dx
                    var pixel = src + (sy * w + firstX) * c + ch
                    for x in xLow..<xHigh {
                        row[x] = Float(pixel.pointee) * gain + zero
                        pixel += stride
                    }
                }
            }
        }
    }
}

/// A small deterministic generator (SplitMix64) for augmentation and sampling draws;
/// seeded from (seed, epoch, position) so results never depend on thread count. Its keys
/// and draws are specified in docs/formats/loader-random-streams.md.
public struct LoaderRandom: Sendable {
    private var generator: SplitMix64

    /// A generator whose stream is a pure function of `keys` (e.g. seed, epoch, position).
    public init(_ keys: UInt64...) {
        var s: UInt64 = 0x243F_6A88_85A3_08D3
        for key in keys { s = SplitMix64.mix(s ^ key) }
        generator = SplitMix64(state: s)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 { generator.next() }

    /// A value in 0..<bound.
    public mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// A permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, next(below: i + 1)) }
        }
        return order
    }
}

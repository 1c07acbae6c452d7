import CSMLoader
import XCTest

/// `ImageTransform.apply` against a slow, obviously-correct reference: every crop offset
/// and flip, several channel counts and a non-square image.
final class ImageTransformTests: XCTestCase {
    /// out[c, y, x] = (pixel[y + dy, x' + dx, c]·scale − mean[c]) / std[c], x' = w − 1 − x when
    /// flipped; zero input (−mean/std) where the source lies outside the image.
    private func reference(_ pixels: [UInt8], h: Int, w: Int, c: Int, _ t: ImageTransform,
                           dy: Int, dx: Int, flip: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            let m = t.mean.isEmpty ? 0 : t.mean[ch], s = t.std.isEmpty ? 1 : t.std[ch]
            for y in 0..<h {
                for x in 0..<w {
                    let sy = y + dy, sx = (flip ? w - 1 - x : x) + dx
                    let inside = sy >= 0 && sy < h && sx >= 0 && sx < w
                    let value = inside ? Float(pixels[(sy * w + sx) * c + ch]) * t.scale : 0
                    out[(ch * h + y) * w + x] = (value - m) / s
                }
            }
        }
        return out
    }

    func testEveryCropOffsetAndFlipMatchesTheReference() {
        for (h, w, c) in [(7, 5, 1), (6, 6, 3), (4, 9, 2)] {
            let pixels = (0..<(h * w * c)).map { UInt8(truncatingIfNeeded: $0 &* 53 &+ 17) }
            let mean = (0..<c).map { 0.2 + 0.1 * Float($0) }, std = (0..<c).map { 0.3 + 0.05 * Float($0) }
            for padding in [0, 1, 4, 12] {
                let transform = ImageTransform(mean: mean, std: std, cropPadding: padding, horizontalFlip: true)
                var seen = Set<String>()
                for trial in 0..<3000 {
                    var random = LoaderRandom(UInt64(trial), 99)
                    var draws = random
                    let dy = padding > 0 ? Int(draws.next() % UInt64(2 * padding + 1)) - padding : 0
                    let dx = padding > 0 ? Int(draws.next() % UInt64(2 * padding + 1)) - padding : 0
                    let flip = draws.next() & 1 == 1
                    seen.insert("\(dy) \(dx) \(flip)")
                    var got = [Float](repeating: .nan, count: c * h * w)
                    got.withUnsafeMutableBufferPointer { out in
                        transform.apply(pixels[...], height: h, width: w, channels: c, random: &random, into: out.baseAddress!)
                    }
                    let expected = reference(pixels, h: h, w: w, c: c, transform, dy: dy, dx: dx, flip: flip)
                    for i in got.indices where abs(got[i] - expected[i]) > 1e-5 {
                        XCTFail("\(h)×\(w)×\(c), padding \(padding), dy \(dy) dx \(dx) flip \(flip): value \(i) is \(got[i]), expected \(expected[i])")
                        return
                    }
                }
                if padding <= 4 {   // (2p + 1)² offsets × 2 flips, all drawn in 3,000 trials
                    XCTAssertEqual(seen.count, (2 * padding + 1) * (2 * padding + 1) * 2, "padding \(padding): not every offset and flip was drawn")
                }
            }
        }
    }
}

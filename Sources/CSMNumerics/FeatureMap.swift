/// A batch of images or activations in NHWC layout (channels innermost), float32.
public struct FeatureMap: Sendable {
    public var count: Int
    public var height: Int
    public var width: Int
    public var channels: Int
    /// count · height · width · channels values, NHWC order.
    public var values: [Float]

    /// A zero-filled map.
    public init(count: Int, height: Int, width: Int, channels: Int) {
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
        self.values = [Float](repeating: 0, count: count * height * width * channels)
    }

    /// A map whose values the caller will write in full (not zeroed).
    public init(uninitializedCount count: Int, height: Int, width: Int, channels: Int) {
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
        let total = count * height * width * channels
        self.values = [Float](unsafeUninitializedCapacity: total) { _, initialized in initialized = total }
    }

    public init(count: Int, height: Int, width: Int, channels: Int, values: [Float]) {
        kernelPrecondition(values.count == count * height * width * channels, "FeatureMap: value count does not match shape")
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
        self.values = values
    }

    /// Pixels per image.
    public var pixels: Int { height * width }

    /// Converts from NCHW (PyTorch's layout).
    public init(nchw: [Float], count: Int, channels: Int, height: Int, width: Int) {
        kernelPrecondition(nchw.count == count * channels * height * width, "FeatureMap: \(nchw.count) NCHW values do not match the shape")
        self.init(uninitializedCount: count, height: height, width: width, channels: channels)
        let plane = height * width
        values.withUnsafeMutableBufferPointer { out in
            for n in 0..<count {
                for c in 0..<channels {
                    let src = (n * channels + c) * plane
                    for p in 0..<plane { out[(n * plane + p) * channels + c] = nchw[src + p] }
                }
            }
        }
    }

    /// The values in NCHW (PyTorch's layout).
    public var nchw: [Float] {
        kernelPrecondition(hasConsistentShape, "FeatureMap: value count does not match shape")
        let plane = pixels
        var out = [Float](repeating: 0, count: values.count)
        for n in 0..<count {
            for c in 0..<channels {
                let dst = (n * channels + c) * plane
                for p in 0..<plane { out[dst + p] = values[(n * plane + p) * channels + c] }
            }
        }
        return out
    }

    /// Images `range` of the batch.
    public func slice(_ range: Range<Int>) -> FeatureMap {
        kernelPrecondition(range.lowerBound >= 0 && range.upperBound <= count && hasConsistentShape, "FeatureMap: images \(range) of \(count)")
        let per = pixels * channels
        return FeatureMap(count: range.count, height: height, width: width, channels: channels,
                          values: Array(values[(range.lowerBound * per)..<(range.upperBound * per)]))
    }

    /// Concatenates batches of equal image shape.
    public static func joined(_ parts: [FeatureMap]) -> FeatureMap {
        guard let first = parts.first else { return FeatureMap(count: 0, height: 0, width: 0, channels: 0) }
        var values: [Float] = []
        values.reserveCapacity(parts.reduce(0) { $0 + $1.values.count })
        for part in parts { values += part.values }
        return FeatureMap(count: parts.reduce(0) { $0 + $1.count }, height: first.height, width: first.width,
                          channels: first.channels, values: values)
    }
}

import CSMFormats
import CSMShards

/// A labelled image dataset in memory, as the importers read it: `count` images of
/// H×W×C uint8 pixels in HWC order, one class index per image.
public struct LabeledImages: Equatable, Sendable {
    public var height: Int
    public var width: Int
    public var channels: Int
    /// One name per class; labels index into it.
    public var classNames: [String]
    /// [N, H, W, C] pixels.
    public var images: [UInt8]
    /// [N] class indices in 0..<classNames.count.
    public var labels: [Int32]

    public init(height: Int, width: Int, channels: Int, classNames: [String], images: [UInt8], labels: [Int32]) {
        self.height = height
        self.width = width
        self.channels = channels
        self.classNames = classNames
        self.images = images
        self.labels = labels
    }

    /// Number of images N.
    public var count: Int { labels.count }

    /// Bytes of one image.
    public var imageSize: Int { height * width * channels }

    /// Images `rows` as real-data shard columns (SPEC §4.3): one-hot labels, class_a = the
    /// class, class_b = −1, lambda_gen = 1, lambda_proj = NaN, prob_a = 1, prob_b = 0,
    /// consistent = 1, group = seed = −1.
    public func realSamples(rows: Range<Int>) -> ShardSamples {
        let n = rows.count
        let k = classNames.count
        var oneHot = [Float](repeating: 0, count: n * k)
        for (row, label) in labels[rows].enumerated() { oneHot[row * k + Int(label)] = 1 }
        let pixels = Array(images[(rows.lowerBound * imageSize)..<(rows.upperBound * imageSize)])
        return ShardSamples(
            height: height, width: width, channels: channels, numClasses: k, images: pixels, labels: oneHot,
            classA: Array(labels[rows]), classB: [Int32](repeating: -1, count: n),
            lambdaGen: [Float](repeating: 1, count: n), lambdaProj: [Float](repeating: .nan, count: n),
            probA: [Float](repeating: 1, count: n), probB: [Float](repeating: 0, count: n),
            consistent: [UInt8](repeating: 1, count: n), group: [Int64](repeating: -1, count: n),
            seed: [Int64](repeating: -1, count: n))
    }
}

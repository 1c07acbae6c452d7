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

    /// Images `rows` as real-data shard columns (`ShardSamples.real`).
    public func realSamples(rows: Range<Int>) -> ShardSamples {
        ShardSamples.real(height: height, width: width, channels: channels, numClasses: classNames.count,
                          images: Array(images[(rows.lowerBound * imageSize)..<(rows.upperBound * imageSize)]),
                          classes: Array(labels[rows]))
    }
}

import CSMDiffusion
import CSMFormats
import CSMNumerics
import CSMPictures
import Foundation

/// What `csm sample` samples: the latents (noise) of its images, the seed of each image's
/// churn noise, and their class vectors; and how the images it returns are named and laid
/// out on a contact sheet.
public struct SampleInputs: Sendable {
    /// Where the latents come from: a file, or seeds.
    public struct Latents: Sendable {
        /// Unit-variance noise, one latent per image.
        public let noise: FeatureMap
        /// The seed of each image's churn noise: its latent's seed, or its index for latents
        /// from a file.
        public let churnSeeds: [UInt64]
        /// Whether the latents come from seeds (the images are then named by seed).
        public let fromSeeds: Bool

        /// `noise` with one churn seed per image.
        public init(noise: FeatureMap, churnSeeds: [UInt64], fromSeeds: Bool) {
            precondition(churnSeeds.count == noise.count, "SampleInputs.Latents: one churn seed per image")
            self.noise = noise
            self.churnSeeds = churnSeeds
            self.fromSeeds = fromSeeds
        }

        /// Tensor 'latents' of safetensors file `path`, float32 [N, C, H, W], which must
        /// match the model's `channels`, `height` and `width`; image i's churn seed is i.
        /// Throws a `FileError` naming the file.
        public init(file path: String, channels: Int, height: Int, width: Int) throws {
            let file = try SafeTensorsFile(path: path)
            let shape = try file.shape(of: "latents")
            guard shape.count == 4, shape[1] == channels, shape[2] == height, shape[3] == width, shape[0] > 0 else {
                throw FileError(path, "tensor 'latents' has shape \(shape), the model needs [N, \(channels), \(height), \(width)]")
            }
            let noise = FeatureMap(nchw: try file.finiteFloats("latents"), count: shape[0], channels: channels, height: height, width: width)
            self.init(noise: noise, churnSeeds: (0..<UInt64(shape[0])).map { $0 }, fromSeeds: false)
        }

        /// The latents of `seeds` (`GaussianStream(seed:)`), each repeated `repeats` times in
        /// a row (a trajectory of that length per seed), which is also each image's churn seed.
        public init(seeds: [UInt64], repeats: Int, channels: Int, height: Int, width: Int) {
            let churnSeeds = seeds.flatMap { [UInt64](repeating: $0, count: repeats) }
            let values = TrajectoryInputs.latents(seeds: seeds, size: channels * height * width, repeats: repeats)
            self.init(noise: FeatureMap(nchw: values, count: churnSeeds.count, channels: channels, height: height, width: width),
                      churnSeeds: churnSeeds, fromSeeds: true)
        }
    }

    /// The class vectors of the images: one choice for all of them.
    public enum Classes: Sendable, Equatable {
        /// Tensor 'class_labels' of this safetensors file, float32 [N, K].
        case file(String)
        /// Class-mixing trajectories of `lambdas` images each: image i carries
        /// λ = (i mod lambdas) / (lambdas − 1) on the pair's class a and 1 − λ on b.
        case trajectory(ClassPair, lambdas: Int)
        /// λ on the pair's class a and 1 − λ on b, every image.
        case mix(ClassPair, lambda: Float)
        /// One class, every image.
        case single(Int)
        /// No class: all zero (what an unconditional model takes).
        case unconditional

        /// Parses `--mix` "A:B:λ" (classes by index or name, 0 ≤ λ ≤ 1). Nil when the text is
        /// not of that form; throws `ClassPair.classIndex`'s `PlanError` for a class it does
        /// not know.
        public static func mix(parsing text: String, classNames: [String]?, classCount: Int) throws -> Classes? {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let lambda = Float(parts[2]), lambda >= 0, lambda <= 1 else { return nil }
            let a = try ClassPair.classIndex(parts[0], classNames: classNames, classCount: classCount)
            let b = try ClassPair.classIndex(parts[1], classNames: classNames, classCount: classCount)
            return .mix(ClassPair(a, b), lambda: lambda)
        }

        /// The class vectors of `count` images of `classCount` classes, image after image
        /// (count · classCount values; none without classes). Reads the file of `.file`:
        /// throws its `FileError`, or one naming it when its shape is not [count, classCount].
        public func vectors(count: Int, classCount: Int) throws -> [Float] {
            let k = classCount
            func repeated(_ vector: [Float]) -> [Float] { (0..<count).flatMap { _ in vector } }
            switch self {
            case .file(let path):
                let file = try SafeTensorsFile(path: path)
                let shape = try file.shape(of: "class_labels")
                guard shape == [count, k] else {
                    throw FileError(path, "tensor 'class_labels' has shape \(shape), expected [\(count), \(k)]")
                }
                return try file.finiteFloats("class_labels")
            case .trajectory(let pair, let lambdas) where k > 0:
                return (0..<count).flatMap {
                    TrajectoryInputs.classVector(pair, lambda: TrajectoryInputs.lambda($0 % lambdas, length: lambdas), classCount: k)
                }
            case .mix(let pair, let lambda) where k > 0:
                return repeated(TrajectoryInputs.classVector(pair, lambda: lambda, classCount: k))
            case .single(let index) where k > 0:
                var vector = [Float](repeating: 0, count: k)
                vector[index] = 1
                return repeated(vector)
            default:
                return [Float](repeating: 0, count: count * k)
            }
        }
    }

    /// The latents and churn seeds.
    public let latents: Latents
    /// The choice of class vectors.
    public let classes: Classes
    /// Classes K of the model.
    public let classCount: Int
    /// The class vectors, N·K values, image after image.
    public let classLabels: [Float]

    /// Images N.
    public var count: Int { latents.noise.count }

    /// The class vectors of `classes` for `latents`, for a model of `classCount` classes.
    /// Throws a `FileError` naming a class-label file that cannot be read or does not match.
    public init(latents: Latents, classes: Classes, classCount: Int) throws {
        self.latents = latents
        self.classes = classes
        self.classCount = classCount
        classLabels = try classes.vectors(count: latents.noise.count, classCount: classCount)
    }

    /// Samples every image with `sampler`, `batch` images per network batch; `progress`
    /// gets the images done so far (a batch counts in proportion to its network
    /// evaluations). Returns the unclipped images. When an image turns non-finite, throws a
    /// `FileError` naming `modelPath` and the image (and its seed).
    public func sample(with sampler: EDMSampler, batch: Int, modelPath: String, progress: ((Int) -> Void)? = nil) throws -> FeatureMap {
        let n = count, k = classCount
        var outputs: [FeatureMap] = []
        var start = 0
        while start < n {
            let end = min(n, start + batch)
            let done = start
            do {
                outputs.append(try sampler.sample(latents: latents.noise.slice(start..<end),
                                                  classLabels: Array(classLabels[(start * k)..<(end * k)]),
                                                  churnSeeds: Array(latents.churnSeeds[start..<end])) { step, total in
                    progress?(done + (end - done) * step / total)
                })
            } catch let failure as NonFiniteSample {
                let i = start + failure.image
                let which = latents.fromSeeds ? "image \(i) (seed \(latents.churnSeeds[i]))" : "image \(i)"
                throw FileError(modelPath, "\(which): \(failure); nothing was written (a model with extreme weights, or latents too large)")
            }
            start = end
        }
        return FeatureMap.joined(outputs)
    }

    /// The PNG file name of image `i`: "seed000042.png" (by seed) or "000042.png" (by
    /// index), trajectories with their λ: "seed000042-lambda0.500.png".
    public func pngName(_ i: Int) -> String {
        var name = latents.fromSeeds ? String(format: "seed%06llu", latents.churnSeeds[i]) : String(format: "%06d", i)
        if case .trajectory(_, let lambdas) = classes {
            name += String(format: "-lambda%.3f", Double(i % lambdas) / Double(lambdas - 1))
        }
        return name + ".png"
    }

    /// The sampled images as uint8 pictures, EDM's convention: truncate(clip(x·127.5 + 128,
    /// 0, 255)), one per image.
    public static func pictures(of images: FeatureMap) throws -> [RasterImage] {
        let per = images.pixels * images.channels
        return try (0..<images.count).map { i in
            let bytes = PixelQuantization.uint8(images.values[(i * per)..<((i + 1) * per)])
            return try RasterImage(width: images.width, height: images.height, channels: images.channels, pixels: bytes)
        }
    }

    /// The contact sheet of `pictures` (one per image): for trajectories a row per seed and a
    /// column per λ, titled with the pair (`classNames`, or "class K"); otherwise a grid about
    /// as wide as it is tall. Images are drawn twice their size.
    public func contactSheet(of pictures: [RasterImage], classNames: [String]?) throws -> RasterImage {
        let n = pictures.count
        guard case .trajectory(let pair, let lambdas) = classes else {
            let columns = min(n, max(1, Int(Double(n).squareRoot().rounded(.up))))
            return try RasterImage.grid(pictures, columns: columns, padding: 2, scale: 2)
        }
        let nameA = classNames?[pair.a] ?? "class \(pair.a)", nameB = classNames?[pair.b] ?? "class \(pair.b)"
        let seeds = stride(from: 0, to: n, by: lambdas).map { latents.churnSeeds[$0] }
        let sheet = ContactSheet(images: pictures, columns: lambdas,
                                 title: "\(nameA) <- \(nameB)",
                                 columnLabels: (0..<lambdas).map { String(format: "λ=%.2f", Double($0) / Double(lambdas - 1)) },
                                 rowLabels: seeds.map { "seed \($0)" }, scale: 2)
        return sheet.render().image()
    }
}

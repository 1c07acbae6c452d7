import CSMFormats
import CSMModels
import Foundation

/// The networks `csm train` builds: `linear` (logistic regression on pixels) and the
/// ResNet presets, sized from the shards (image size, channels, classes).
public enum NetworkPresets {
    /// The preset names, as `csm train --arch` takes them.
    public static let names = ["resnet20", "resnet32", "resnet56", "resnet18", "resnet50", "linear"]

    /// A fresh network of preset `name`.
    public static func make(_ name: String, input: ResNetInput, classNames: [String], seed: UInt64) throws -> TrainableNetwork {
        if name == "linear" { return LinearClassifier(input: input, classNames: classNames, seed: seed) }
        guard let architecture = ResNetArchitecture.preset(name, input: input, classes: classNames.count) else {
            throw TrainingError("--arch must be one of \(names.joined(separator: ", ")), got '\(name)'")
        }
        return TrainableResNet(architecture: architecture, input: input, classNames: classNames, seed: seed)
    }

    /// A classifier file to start from (`--init`).
    public static func load(_ path: String) throws -> TrainableNetwork {
        let file = try SafeTensorsFile(path: path)
        switch file.metadata["format"] {
        case LinearClassifier.format?: return try LinearClassifier(path: path)
        case "resnet-classifier/1"?: return try TrainableResNet(path: path)
        default: throw FileError(path, "not a classifier csm can train (format \(file.metadata["format"] ?? "missing"))")
        }
    }

    /// Refuses data whose image size, channels or classes differ from `network`'s.
    public static func check(_ network: TrainableNetwork, file: String, against data: TrainingData) throws {
        let i = network.input
        guard i.height == data.input.height, i.width == data.input.width, i.channels == data.input.channels,
              network.classCount == data.classCount else {
            throw FileError(file, "takes \(i.height)×\(i.width)×\(i.channels) images of \(network.classCount) classes, but \(data.real.shards[0].path) holds \(data.input.height)×\(data.input.width)×\(data.input.channels) images of \(data.classCount) classes")
        }
        guard network.classNames == data.classNames else {
            throw FileError(file, "classes \(network.classNames) differ from the shards' \(data.classNames)")
        }
    }
}

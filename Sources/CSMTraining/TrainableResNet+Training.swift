import CSMModels

/// The ResNets of `resnet-classifier/1` train through the loop as they are.
extension TrainableResNet: TrainableNetwork {}

extension ResNetArchitecture {
    /// The `csm train --arch` presets, sized for `input` and `classes`: resnet20/32/56 (CIFAR
    /// ResNets: basic blocks, widths 16, 32, 64) and torchvision's resnet18 (basic) and
    /// resnet50 (bottleneck), widths 64 … 512. Every preset takes the CIFAR stem (3×3
    /// convolution, no max-pool) for images up to 64 pixels and the ImageNet stem above.
    public static func preset(_ name: String, input: ResNetInput, classes: Int) -> ResNetArchitecture? {
        let stem: Stem = max(input.height, input.width) <= 64 ? .cifar : .imagenet
        let cifarWidths = [16, 32, 64], wide = [64, 128, 256, 512]
        let shape: (Block, [Int], [Int])
        switch name {
        case "resnet20": shape = (.basic, [3, 3, 3], cifarWidths)
        case "resnet32": shape = (.basic, [5, 5, 5], cifarWidths)
        case "resnet56": shape = (.basic, [9, 9, 9], cifarWidths)
        case "resnet18": shape = (.basic, [2, 2, 2, 2], wide)
        case "resnet50": shape = (.bottleneck, [3, 4, 6, 3], wide)
        default: return nil
        }
        return ResNetArchitecture(block: shape.0, layers: shape.1, widths: shape.2, stem: stem, inputChannels: input.channels,
                                  numClasses: classes)
    }
}

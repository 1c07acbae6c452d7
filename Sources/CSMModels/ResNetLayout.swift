/// One convolution and the batch norm after it, under the names the model file uses.
public struct ResNetConvSpec: Sendable, Equatable {
    /// Tensor prefix of the convolution (`layer1.0.conv1`).
    public let conv: String
    /// Tensor prefix of its batch norm (`layer1.0.bn1`).
    public let norm: String
    public let inputs: Int
    public let outputs: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int
    /// Whether a ReLU follows (inside a block, the last convolution's ReLU comes after the residual add).
    public let relu: Bool
}

/// One residual block: its convolutions in order and, when the shape changes, the 1×1
/// convolution + batch norm of the shortcut.
public struct ResNetBlockSpec: Sendable, Equatable {
    public let convs: [ResNetConvSpec]
    public let downsample: ResNetConvSpec?
}

extension ResNetArchitecture {
    /// The stem: 3×3 stride 1 (cifar) or 7×7 stride 2 (imagenet), then ReLU.
    public var stemSpec: ResNetConvSpec {
        stem == .cifar
            ? ResNetConvSpec(conv: "conv1", norm: "bn1", inputs: inputChannels, outputs: widths[0], kernel: 3, stride: 1, padding: 1, relu: true)
            : ResNetConvSpec(conv: "conv1", norm: "bn1", inputs: inputChannels, outputs: widths[0], kernel: 7, stride: 2, padding: 3, relu: true)
    }

    /// Every residual block in order, as torchvision builds them: a stage after the first
    /// starts with stride 2 (on the 3×3 convolution of a bottleneck), and a shortcut is a
    /// 1×1 convolution + batch norm where the shape changes.
    public var blockSpecs: [ResNetBlockSpec] {
        var blocks: [ResNetBlockSpec] = []
        var channels = widths[0]
        for (stage, (count, planes)) in zip(layers, widths).enumerated() {
            for index in 0..<count {
                let name = "layer\(stage + 1).\(index)"
                let stride = stage > 0 && index == 0 ? 2 : 1
                let outputs = planes * expansion
                func conv(_ i: Int, _ inputs: Int, _ outputs: Int, kernel: Int, stride: Int, relu: Bool) -> ResNetConvSpec {
                    ResNetConvSpec(conv: "\(name).conv\(i)", norm: "\(name).bn\(i)", inputs: inputs, outputs: outputs,
                                   kernel: kernel, stride: stride, padding: kernel / 2, relu: relu)
                }
                let convs: [ResNetConvSpec]
                switch block {
                case .basic:
                    convs = [conv(1, channels, planes, kernel: 3, stride: stride, relu: true),
                             conv(2, planes, planes, kernel: 3, stride: 1, relu: false)]
                case .bottleneck:
                    convs = [conv(1, channels, planes, kernel: 1, stride: 1, relu: true),
                             conv(2, planes, planes, kernel: 3, stride: stride, relu: true),
                             conv(3, planes, outputs, kernel: 1, stride: 1, relu: false)]
                }
                let downsample = stride != 1 || channels != outputs
                    ? ResNetConvSpec(conv: "\(name).downsample.0", norm: "\(name).downsample.1", inputs: channels, outputs: outputs,
                                     kernel: 1, stride: stride, padding: 0, relu: false)
                    : nil
                blocks.append(ResNetBlockSpec(convs: convs, downsample: downsample))
                channels = outputs
            }
        }
        return blocks
    }
}

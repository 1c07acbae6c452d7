/// The layers of EDM's SongUNet or DhariwalUNet for one configuration, in the order
/// networks.py runs them, each with its weights' name and its channel counts. The sampling
/// networks (`SongUNet`, `DhariwalUNet`) and the differentiable one (`TrainableUNet`) build
/// their layers from it, so the architecture is written down once.
///
/// Both networks keep a skip after every encoder step (an aux step replaces the last one),
/// and each decoder block whose input channels exceed the running map's takes the latest.
struct EDMLayout: Sendable {
    /// One `UNetBlock`: weights under `name`, `inputs` → `outputs` channels.
    struct Block: Sendable {
        let name: String
        let inputs: Int
        let outputs: Int
        var up = false
        var down = false
        var attention = false
    }

    enum EncoderStep: Sendable {
        /// The first level's 3×3 convolution of the input.
        case conv(name: String, inputs: Int, outputs: Int)
        case block(Block)
        /// SongUNet's skip encoder: the auxiliary image downsampled by the resample filter (no weights).
        case auxDown(name: String, channels: Int)
        /// SongUNet's skip encoder: a 1×1 convolution of the auxiliary image, added to the map.
        case auxSkip(name: String, inputs: Int, outputs: Int)
        /// SongUNet's residual encoder: a fused downsampling 3×3 convolution of the auxiliary
        /// map, added to the map with scale √½; the sum becomes the auxiliary map.
        case auxResidual(name: String, inputs: Int, outputs: Int)
    }

    enum DecoderStep: Sendable {
        case block(Block)
        /// SongUNet's skip decoder: the running output upsampled by the resample filter (no weights).
        case auxUp(name: String, channels: Int)
        /// Group norm and SiLU of the map, for the `auxConv` that follows.
        case auxNorm(name: String, channels: Int)
        /// A 3×3 convolution to the image's channels, added to the running output if there is one.
        case auxConv(name: String, inputs: Int, outputs: Int)
    }

    let encoder: [EncoderStep]
    let decoder: [DecoderStep]

    init(_ c: EDMConfiguration) {
        let adm = c.modelType == .dhariwalUNet
        let levels = c.channelMultipliers.count
        var encoder: [EncoderStep] = []
        var skips: [Int] = []
        var cout = c.channels, caux = c.channels
        for (level, mult) in c.channelMultipliers.enumerated() {
            let res = c.resolution >> level
            let prefix = "model.enc.\(res)x\(res)"
            if level == 0 {
                let cin = cout
                cout = c.modelChannels * (adm ? mult : 1)
                encoder.append(.conv(name: "\(prefix)_conv", inputs: cin, outputs: cout))
                skips.append(cout)
            } else {
                encoder.append(.block(Block(name: "\(prefix)_down", inputs: cout, outputs: cout, down: true)))
                skips.append(cout)
                if !adm && c.encoderType == "skip" {
                    encoder.append(.auxDown(name: "\(prefix)_aux_down", channels: caux))
                    encoder.append(.auxSkip(name: "\(prefix)_aux_skip", inputs: caux, outputs: cout))
                }
                if !adm && c.encoderType == "residual" {
                    encoder.append(.auxResidual(name: "\(prefix)_aux_residual", inputs: caux, outputs: cout))
                    caux = cout
                }
            }
            for index in 0..<c.blocksPerResolution {
                let cin = cout
                cout = c.modelChannels * mult
                encoder.append(.block(Block(name: "\(prefix)_block\(index)", inputs: cin, outputs: cout,
                                            attention: c.attentionResolutions.contains(res))))
                skips.append(cout)
            }
        }

        var decoder: [DecoderStep] = []
        for (level, mult) in c.channelMultipliers.enumerated().reversed() {
            let res = c.resolution >> level
            let prefix = "model.dec.\(res)x\(res)"
            if level == levels - 1 {
                decoder.append(.block(Block(name: "\(prefix)_in0", inputs: cout, outputs: cout, attention: true)))
                decoder.append(.block(Block(name: "\(prefix)_in1", inputs: cout, outputs: cout)))
            } else {
                decoder.append(.block(Block(name: "\(prefix)_up", inputs: cout, outputs: cout, up: true)))
            }
            for index in 0...c.blocksPerResolution {
                let cin = cout + skips.removeLast()
                cout = c.modelChannels * mult
                // ADM attends in every block of an attention resolution, SongUNet in its last.
                let attention = c.attentionResolutions.contains(res) && (adm || index == c.blocksPerResolution)
                decoder.append(.block(Block(name: "\(prefix)_block\(index)", inputs: cin, outputs: cout, attention: attention)))
            }
            if !adm && (c.decoderType == "skip" || level == 0) {
                if c.decoderType == "skip" && level < levels - 1 {
                    decoder.append(.auxUp(name: "\(prefix)_aux_up", channels: c.channels))
                }
                decoder.append(.auxNorm(name: "\(prefix)_aux_norm", channels: cout))
                decoder.append(.auxConv(name: "\(prefix)_aux_conv", inputs: cout, outputs: c.channels))
            }
        }
        if adm {
            decoder.append(.auxNorm(name: "model.out_norm", channels: cout))
            decoder.append(.auxConv(name: "model.out_conv", inputs: cout, outputs: c.channels))
        }
        self.encoder = encoder
        self.decoder = decoder
    }
}

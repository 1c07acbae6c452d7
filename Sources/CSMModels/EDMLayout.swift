/// The layers of EDM's SongUNet or DhariwalUNet for one configuration, in the order
/// networks.py runs them, each with its weights' name and its channel counts (a
/// convolution's also its kernel and resampling). The sampling
/// networks (`SongUNet`, `DhariwalUNet`) and the differentiable one (`TrainableUNet`) build
/// their layers from it, so the architecture is written down once.
///
/// Both networks keep a skip after every encoder step (an aux step replaces the last one),
/// and each decoder block whose input channels exceed the running map's takes the latest.
struct EDMLayout: Sendable {
    /// One `Conv2d`: weights under `name` (none when `kernel` is 0: resampling only),
    /// `inputs` → `outputs` channels, the resampling around it and whether it is fused.
    struct Conv: Sendable {
        let name: String
        let inputs: Int
        let outputs: Int
        let kernel: Int
        var up = false
        var down = false
        var fused = false
    }

    /// One `UNetBlock`: weights under `name`, `inputs` → `outputs` channels.
    struct Block: Sendable {
        let name: String
        let inputs: Int
        let outputs: Int
        var up = false
        var down = false
        var attention = false
    }

    /// One `GroupNorm` of `channels` channels: weights under `name`.
    struct Norm: Sendable {
        let name: String
        let channels: Int
    }

    typealias EncoderStep = EDMEncoderStep<Conv, Block>
    typealias DecoderStep = EDMDecoderStep<Conv, Block, Norm>

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
                encoder.append(.conv(Conv(name: "\(prefix)_conv", inputs: cin, outputs: cout, kernel: 3)))
                skips.append(cout)
            } else {
                encoder.append(.block(Block(name: "\(prefix)_down", inputs: cout, outputs: cout, down: true)))
                skips.append(cout)
                if !adm && c.encoderType == "skip" {
                    encoder.append(.auxDown(Conv(name: "\(prefix)_aux_down", inputs: caux, outputs: caux, kernel: 0, down: true)))
                    encoder.append(.auxSkip(Conv(name: "\(prefix)_aux_skip", inputs: caux, outputs: cout, kernel: 1)))
                }
                if !adm && c.encoderType == "residual" {
                    encoder.append(.auxResidual(Conv(name: "\(prefix)_aux_residual", inputs: caux, outputs: cout, kernel: 3,
                                                          down: true, fused: true)))
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
                    decoder.append(.auxUp(Conv(name: "\(prefix)_aux_up", inputs: c.channels, outputs: c.channels, kernel: 0, up: true)))
                }
                decoder.append(.auxNorm(Norm(name: "\(prefix)_aux_norm", channels: cout)))
                decoder.append(.auxConv(Conv(name: "\(prefix)_aux_conv", inputs: cout, outputs: c.channels, kernel: 3)))
            }
        }
        if adm {
            decoder.append(.auxNorm(Norm(name: "model.out_norm", channels: cout)))
            decoder.append(.auxConv(Conv(name: "model.out_conv", inputs: cout, outputs: c.channels, kernel: 3)))
        }
        self.encoder = encoder
        self.decoder = decoder
    }
}

/// One step of an EDM network's encoder, in the order networks.py runs them: `EDMLayout`'s
/// (`EDMLayout.Conv`, `EDMLayout.Block`), or a network's with its layers built from them.
/// Every step but the aux ones keeps a skip; an aux step replaces the last one.
enum EDMEncoderStep<Conv, Block> {
    /// The first level's 3×3 convolution of the input.
    case conv(Conv)
    case block(Block)
    /// SongUNet's skip encoder: the auxiliary image downsampled by the resample filter (no weights).
    case auxDown(Conv)
    /// SongUNet's skip encoder: a 1×1 convolution of the auxiliary image, added to the map.
    case auxSkip(Conv)
    /// SongUNet's residual encoder: a fused downsampling 3×3 convolution of the auxiliary
    /// map, added to the map with scale √½; the sum becomes the auxiliary map.
    case auxResidual(Conv)

    /// The same step with its layer built by `conv` or `block`.
    func map<C, B>(conv: (Conv) throws -> C, block: (Block) throws -> B) rethrows -> EDMEncoderStep<C, B> {
        switch self {
        case .conv(let c): .conv(try conv(c))
        case .block(let b): .block(try block(b))
        case .auxDown(let c): .auxDown(try conv(c))
        case .auxSkip(let c): .auxSkip(try conv(c))
        case .auxResidual(let c): .auxResidual(try conv(c))
        }
    }
}

extension EDMEncoderStep: Sendable where Conv: Sendable, Block: Sendable {}

/// One step of an EDM network's decoder, in the order networks.py runs them: `EDMLayout`'s
/// (`EDMLayout.Conv`, `EDMLayout.Block`, `EDMLayout.Norm`), or a network's with its layers
/// built from them. Each block whose input channels exceed the running map's takes the latest skip.
enum EDMDecoderStep<Conv, Block, Norm> {
    case block(Block)
    /// SongUNet's skip decoder: the running output upsampled by the resample filter (no weights).
    case auxUp(Conv)
    /// Group norm and SiLU of the map, for the `auxConv` that follows.
    case auxNorm(Norm)
    /// A 3×3 convolution to the image's channels, added to the running output if there is one.
    case auxConv(Conv)

    /// The same step with its layer built by `conv`, `block` or `norm`.
    func map<C, B, N>(conv: (Conv) throws -> C, block: (Block) throws -> B, norm: (Norm) throws -> N) rethrows
        -> EDMDecoderStep<C, B, N> {
        switch self {
        case .block(let b): .block(try block(b))
        case .auxUp(let c): .auxUp(try conv(c))
        case .auxNorm(let n): .auxNorm(try norm(n))
        case .auxConv(let c): .auxConv(try conv(c))
        }
    }
}

extension EDMDecoderStep: Sendable where Conv: Sendable, Block: Sendable, Norm: Sendable {}

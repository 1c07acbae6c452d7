import CSMCalibration

/// The loss a run trains with. Every loss is the mean over the batch; the CSM losses
/// average their real and mixed parts each over its own samples.
public struct TrainingLoss: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// Cross entropy.
        case ce
        /// Label smoothing (`smoothing`).
        case ls
        /// Focal loss (`gamma`).
        case focal
        /// BSCE-GRA (`gamma`, `norm`).
        case bsceGRA = "bsce-gra"
        /// CSM: cross entropy on real samples + squared L2 between softmax and soft target on mixed ones.
        case csm
        /// CSM with BSCE-GRA (`gamma`, `norm`) as its real-sample term.
        case csmBSCEGRA = "csm-bsce-gra"
    }

    public var kind: Kind
    public var smoothing: Double
    public var gamma: Double
    public var norm: Double

    public init(kind: Kind, smoothing: Double = 0.1, gamma: Double? = nil, norm: Double = 2) {
        self.kind = kind
        self.smoothing = smoothing
        self.gamma = gamma ?? (kind == .focal ? 3 : 2)
        self.norm = norm
    }

    /// Whether the loss trains on mixed samples (and needs a mixed set).
    public var usesMixed: Bool { kind == .csm || kind == .csmBSCEGRA }

    /// The loss of a batch and its gradient with respect to the logits, real rows first,
    /// then mixed rows (`mixedLogits` is empty for the losses that use real samples only).
    public func evaluate(realLogits: [Float], realLabels: [Int], mixedLogits: [Float], mixedTargets: [Float],
                         classCount k: Int) throws -> (value: Double, gradient: [Float]) {
        let z = realLogits.map(Double.init)
        switch kind {
        case .ce, .ls, .focal, .bsceGRA:
            let output: LossOutput
            switch kind {
            case .ce: output = try Losses.crossEntropy(logits: z, classCount: k, labels: realLabels)
            case .ls: output = try Losses.labelSmoothing(logits: z, classCount: k, labels: realLabels, smoothing: smoothing)
            case .focal: output = try Losses.focal(logits: z, classCount: k, labels: realLabels, gamma: gamma)
            default: output = try Losses.bsceGRA(logits: z, classCount: k, labels: realLabels, gamma: gamma, norm: norm)
            }
            return (output.value, output.gradient.map(Float.init))
        case .csm, .csmBSCEGRA:
            let m = mixedLogits.map(Double.init), t = mixedTargets.map(Double.init)
            let output = kind == .csm
                ? try Losses.csm(realLogits: z, realLabels: realLabels, mixedLogits: m, mixedTargets: t, classCount: k)
                : try Losses.csmBSCEGRA(realLogits: z, realLabels: realLabels, mixedLogits: m, mixedTargets: t,
                                        classCount: k, gamma: gamma, norm: norm)
            return (output.value, (output.realGradient + output.mixedGradient).map(Float.init))
        }
    }
}

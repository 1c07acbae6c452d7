import Foundation

/// How per-sample losses combine into one number.
public enum LossReduction: String, Sendable, CaseIterable {
    /// Average over the samples (the usual choice).
    case mean
    /// Sum over the samples.
    case sum
}

/// A loss value with its gradient with respect to the logits.
public struct LossOutput: Sendable {
    /// The reduced loss.
    public var value: Double
    /// Each sample's loss before reduction.
    public var perSample: [Double]
    /// d value / d logits, laid out like the logits (N rows of K).
    public var gradient: [Double]
}

/// The CSM training loss with its parts and gradients.
public struct CSMLossOutput: Sendable {
    /// crossEntropy + mixedWeight · mixing.
    public var value: Double
    /// Cross entropy of the real samples (reduced).
    public var crossEntropy: Double
    /// Squared L2 distance between softmax and soft target on the mixed samples (reduced).
    public var mixing: Double
    /// d value / d realLogits.
    public var realGradient: [Double]
    /// d value / d mixedLogits.
    public var mixedGradient: [Double]
}

/// Classification losses with analytic gradients with respect to the logits, for training
/// loops written in Swift. Logits are N rows of K values (row-major, Float64); every loss
/// uses a max-shifted log-softmax, so large logits neither overflow nor lose precision.
/// Float32 callers convert with `logits.map(Double.init)`.
public enum Losses {
    /// Cross entropy with integer labels: −log p_y. Gradient p − onehot(y).
    public static func crossEntropy(
        logits: [Double], classCount: Int, labels: [Int], reduction: LossReduction = .mean
    ) throws -> LossOutput {
        try perRow(logits, classCount, labels, reduction) { row in
            row.gradient[row.label] -= 1
            return -row.logP[row.label]
        }
    }

    /// Cross entropy with soft targets (N rows of K, e.g. CSM's mixed labels or mixup's):
    /// −Σ_k t_k log p_k. Gradient (Σ_k t_k)·p − t, i.e. p − t for targets summing to 1.
    public static func crossEntropy(
        logits: [Double], classCount: Int, targets: [Double], reduction: LossReduction = .mean
    ) throws -> LossOutput {
        try checkTargets(targets, logits.count)
        return try perRow(logits, classCount, nil, reduction) { row in
            let t = row.index * row.classCount
            var loss = 0.0, mass = 0.0
            for k in 0..<row.classCount {
                loss -= targets[t + k] * row.logP[k]
                mass += targets[t + k]
            }
            for k in 0..<row.classCount {
                row.gradient[k] = mass * row.p[k] - targets[t + k]
            }
            return loss
        }
    }

    /// Cross entropy against the smoothed target (1 − ε)·onehot(y) + ε/K.
    /// Gradient p − target. ε = 0 is plain cross entropy.
    public static func labelSmoothing(
        logits: [Double], classCount: Int, labels: [Int], smoothing: Double, reduction: LossReduction = .mean
    ) throws -> LossOutput {
        guard (0...1).contains(smoothing) else {
            throw CalibrationError.invalidParameter("label smoothing \(smoothing) must lie in [0, 1]")
        }
        return try perRow(logits, classCount, labels, reduction) { row in
            let floor = smoothing / Double(row.classCount)
            var loss = 0.0
            for k in 0..<row.classCount {
                let target = floor + (k == row.label ? 1 - smoothing : 0)
                loss -= target * row.logP[k]
                row.gradient[k] -= target
            }
            return loss
        }
    }

    /// Focal loss (Lin et al., 2017; for calibration Mukhoti et al., 2020):
    /// −(1 − p_y)^γ log p_y. γ = 0 is cross entropy.
    public static func focal(
        logits: [Double], classCount: Int, labels: [Int], gamma: Double, reduction: LossReduction = .mean
    ) throws -> LossOutput {
        guard gamma >= 0, gamma.isFinite else {
            throw CalibrationError.invalidParameter("focal γ \(gamma) must be finite and non-negative")
        }
        return try perRow(logits, classCount, labels, reduction) { row in
            let logPy = row.logP[row.label]
            let py = exp(logPy)
            let rest = -expm1(logPy)  // 1 − p_y without cancellation
            let modulation = pow(rest, gamma)
            // dL/dz_j = [γ(1−p)^(γ−1)·p·log p − (1−p)^γ] · (δ_jy − p_j)
            var slope = -modulation
            if gamma > 0 && rest > 0 {
                slope += gamma * pow(rest, gamma - 1) * py * logPy
            }
            for k in 0..<row.classCount {
                row.gradient[k] = slope * ((k == row.label ? 1 : 0) - row.p[k])
            }
            return -modulation * logPy
        }
    }

    /// The BSCE-GRA weight of each sample: w = ‖onehot(y) − p‖_norm^γ (norm 2, γ 2: the
    /// sample's Brier score). `norm` may be any value ≥ 1 or `.infinity`.
    public static func bsceGRAWeights(
        logits: [Double], classCount: Int, labels: [Int], gamma: Double = 2, norm: Double = 2
    ) throws -> [Double] {
        try checkBSCE(gamma, norm)
        return try perRow(logits, classCount, labels, .sum) { row in
            bsceWeight(row, gamma: gamma, norm: norm)
        }.perSample
    }

    /// BSCE-GRA: cross entropy weighted per sample by w = ‖onehot(y) − p‖_norm^γ, with w
    /// treated as a constant (no gradient flows through it): loss −w·log p_y, gradient
    /// w·(p − onehot(y)). Defaults norm 2, γ 2 (w is the Brier score); γ = 0 is cross entropy.
    public static func bsceGRA(
        logits: [Double], classCount: Int, labels: [Int], gamma: Double = 2, norm: Double = 2,
        reduction: LossReduction = .mean
    ) throws -> LossOutput {
        try checkBSCE(gamma, norm)
        return try perRow(logits, classCount, labels, reduction) { row in
            let w = bsceWeight(row, gamma: gamma, norm: norm)
            for k in 0..<row.classCount {
                row.gradient[k] = w * (row.p[k] - (k == row.label ? 1 : 0))
            }
            return -w * row.logP[row.label]
        }
    }

    /// The CSM loss, as the paper's training code computes it: cross entropy on the real
    /// samples plus the squared L2 distance Σ_k (p_k − t_k)² between the softmax and the
    /// soft target on the mixed samples, weighted by `mixedWeight` (1 in the paper).
    ///
    /// With `.mean` each part is averaged over its own samples (an empty part counts 0);
    /// with `.sum` both are summed.
    ///
    /// - Parameters:
    ///   - realLogits, realLabels: real samples (N_r rows of K) and their classes.
    ///   - mixedLogits, mixedTargets: generated samples (N_m rows of K) and their soft labels.
    public static func csm(
        realLogits: [Double], realLabels: [Int], mixedLogits: [Double], mixedTargets: [Double],
        classCount: Int, mixedWeight: Double = 1, reduction: LossReduction = .mean
    ) throws -> CSMLossOutput {
        try csm(realLogits: realLogits, realLabels: realLabels, mixedLogits: mixedLogits, mixedTargets: mixedTargets,
                classCount: classCount, mixedWeight: mixedWeight, reduction: reduction) {
            try crossEntropy(logits: realLogits, classCount: classCount, labels: realLabels, reduction: reduction)
        }
    }

    /// The CSM loss with its real-sample term replaced by BSCE-GRA (`bsceGRA`, weights
    /// ‖onehot(y) − p‖_norm^γ held constant): BSCE-GRA on the real samples plus
    /// `mixedWeight` times the squared L2 distance between softmax and soft target on the
    /// mixed ones, each part reduced over its own samples as in `csm`.
    public static func csmBSCEGRA(
        realLogits: [Double], realLabels: [Int], mixedLogits: [Double], mixedTargets: [Double],
        classCount: Int, gamma: Double = 2, norm: Double = 2, mixedWeight: Double = 1, reduction: LossReduction = .mean
    ) throws -> CSMLossOutput {
        try checkBSCE(gamma, norm)
        return try csm(realLogits: realLogits, realLabels: realLabels, mixedLogits: mixedLogits, mixedTargets: mixedTargets,
                       classCount: classCount, mixedWeight: mixedWeight, reduction: reduction) {
            try bsceGRA(logits: realLogits, classCount: classCount, labels: realLabels, gamma: gamma, norm: norm,
                        reduction: reduction)
        }
    }

    /// The CSM loss with `realTerm` computing the real samples' part.
    private static func csm(
        realLogits: [Double], realLabels: [Int], mixedLogits: [Double], mixedTargets: [Double],
        classCount: Int, mixedWeight: Double, reduction: LossReduction, realTerm: () throws -> LossOutput
    ) throws -> CSMLossOutput {
        guard classCount > 0 else { throw CalibrationError.empty("no classes") }
        guard !realLabels.isEmpty || !mixedLogits.isEmpty else { throw CalibrationError.empty("no samples") }
        guard mixedWeight.isFinite else { throw CalibrationError.invalidParameter("mixed weight \(mixedWeight) is not finite") }
        guard realLogits.count == realLabels.count * classCount else {
            throw CalibrationError.shapeMismatch(
                "\(realLogits.count) real logits for \(realLabels.count) labels × \(classCount) classes")
        }
        var ce = LossOutput(value: 0, perSample: [], gradient: [])
        if !realLabels.isEmpty {
            ce = try realTerm()
        }
        var l2 = LossOutput(value: 0, perSample: [], gradient: [])
        if !mixedLogits.isEmpty || !mixedTargets.isEmpty {
            try checkTargets(mixedTargets, mixedLogits.count)
            l2 = try perRow(mixedLogits, classCount, nil, reduction) { row in
                // l = Σ_k (p_k − t_k)²;  dl/dz_j = 2 p_j [(p_j − t_j) − Σ_k (p_k − t_k) p_k]
                let t = row.index * row.classCount
                var loss = 0.0, weighted = 0.0
                for k in 0..<row.classCount {
                    let d = row.p[k] - mixedTargets[t + k]
                    loss += d * d
                    weighted += d * row.p[k]
                }
                for k in 0..<row.classCount {
                    row.gradient[k] = 2 * row.p[k] * (row.p[k] - mixedTargets[t + k] - weighted)
                }
                return loss
            }
        }
        return CSMLossOutput(
            value: ce.value + mixedWeight * l2.value, crossEntropy: ce.value, mixing: l2.value,
            realGradient: ce.gradient, mixedGradient: l2.gradient.map { $0 * mixedWeight })
    }

    // MARK: - Shared machinery

    /// One sample seen by a loss: its log-softmax, softmax, label and a gradient row that
    /// starts as p (the softmax), ready for the common `p − target` form.
    struct Row {
        var index: Int
        var classCount: Int
        var label: Int
        var logP: [Double]
        var p: [Double]
        var gradient: [Double]
    }

    /// Runs `body` on every row and reduces; `body` returns the sample's loss and leaves its
    /// gradient (of the per-sample loss) in `row.gradient`.
    static func perRow(
        _ logits: [Double], _ classCount: Int, _ labels: [Int]?, _ reduction: LossReduction,
        _ body: (inout Row) -> Double
    ) throws -> LossOutput {
        guard classCount > 0 else { throw CalibrationError.empty("no classes") }
        let n: Int
        if let labels {
            n = try validate(logitCount: logits.count, classCount: classCount, labels: labels)
        } else {
            guard logits.count % classCount == 0, !logits.isEmpty else {
                throw CalibrationError.shapeMismatch("\(logits.count) logits do not make rows of \(classCount) classes")
            }
            n = logits.count / classCount
        }
        let scale = reduction == .mean ? 1 / Double(n) : 1
        var perSample = [Double](repeating: 0, count: n)
        var gradient = [Double](repeating: 0, count: logits.count)
        var row = Row(
            index: 0, classCount: classCount, label: 0,
            logP: [Double](repeating: 0, count: classCount), p: [Double](repeating: 0, count: classCount),
            gradient: [Double](repeating: 0, count: classCount))
        var total = 0.0
        for i in 0..<n {
            let base = i * classCount
            var top = -Double.infinity
            for k in 0..<classCount { top = max(top, logits[base + k]) }
            guard top.isFinite, !logits[base..<(base + classCount)].contains(where: \.isNaN) else {
                throw CalibrationError.nonFiniteLogit(sample: i)
            }
            var sum = 0.0
            for k in 0..<classCount { sum += exp(logits[base + k] - top) }
            let lse = top + log(sum)
            for k in 0..<classCount {
                row.logP[k] = logits[base + k] - lse
                row.p[k] = exp(row.logP[k])
                row.gradient[k] = row.p[k]
            }
            row.index = i
            row.label = labels?[i] ?? 0
            let loss = body(&row)
            perSample[i] = loss
            total += loss
            for k in 0..<classCount { gradient[base + k] = row.gradient[k] * scale }
        }
        return LossOutput(value: total * scale, perSample: perSample, gradient: gradient)
    }

    private static func bsceWeight(_ row: Row, gamma: Double, norm: Double) -> Double {
        guard gamma != 0 else { return 1 }
        var length = 0.0
        if norm.isInfinite {
            for k in 0..<row.classCount {
                length = max(length, abs((k == row.label ? 1 : 0) - row.p[k]))
            }
        } else {
            var powers = 0.0
            for k in 0..<row.classCount {
                powers += pow(abs((k == row.label ? 1 : 0) - row.p[k]), norm)
            }
            return pow(powers, gamma / norm)
        }
        return pow(length, gamma)
    }

    private static func checkBSCE(_ gamma: Double, _ norm: Double) throws {
        guard gamma >= 0, gamma.isFinite else {
            throw CalibrationError.invalidParameter("BSCE-GRA γ \(gamma) must be finite and non-negative")
        }
        guard norm >= 1 else {
            throw CalibrationError.invalidParameter("BSCE-GRA norm \(norm) must be at least 1 (or infinity)")
        }
    }

    private static func checkTargets(_ targets: [Double], _ logitCount: Int) throws {
        guard targets.count == logitCount else {
            throw CalibrationError.shapeMismatch("\(targets.count) target values for \(logitCount) logits")
        }
        if let bad = targets.firstIndex(where: { !$0.isFinite }) {
            throw CalibrationError.invalidParameter("target value \(bad) is not finite")
        }
    }
}

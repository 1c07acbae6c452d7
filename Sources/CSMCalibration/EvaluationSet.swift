import CSMFormats
import Foundation

/// Logits and hard labels to measure calibration on (`csm evaluate`), read by
/// `EvaluationInputReader` or made by running a classifier; errors name the file at fault.
public struct EvaluationSet {
    /// The logits [N, K], row-major.
    public enum Values {
        case float([Float])
        case double([Double])
        /// A float32 .npy file, read in place from its memory map.
        case mappedFloat32(NumPyArray)
    }

    /// The files the logits and the labels came from (named in errors).
    public var logitsPath: String
    public var labelsPath: String
    public var values: Values
    public var sampleCount: Int
    public var classCount: Int
    /// The class of each sample.
    public var labels: [Int]

    public init(logitsPath: String, labelsPath: String, values: Values, sampleCount: Int, classCount: Int, labels: [Int]) {
        self.logitsPath = logitsPath
        self.labelsPath = labelsPath
        self.values = values
        self.sampleCount = sampleCount
        self.classCount = classCount
        self.labels = labels
    }

    /// Accuracy, NLL, Brier and the calibration errors at `temperature`.
    public func metrics(binCount: Int, temperature: Double) throws -> CalibrationMetrics {
        try attributing {
            switch values {
            case .float(let v):
                return try CalibrationMetrics(logits: v, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature)
            case .double(let v):
                return try CalibrationMetrics(logits: v, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature)
            case .mappedFloat32(let array):
                return try array.withFloat32Elements {
                    try CalibrationMetrics(logits: $0, classCount: classCount, labels: labels, binCount: binCount, temperature: temperature)
                }
            }
        }
    }

    /// The bootstrap interval of ECE (see `BootstrapInterval`).
    public func eceInterval(binCount: Int, temperature: Double, resamples: Int, seed: UInt64) throws -> BootstrapInterval {
        try attributing {
            switch values {
            case .float(let v):
                return try BootstrapInterval.ece(logits: v, classCount: classCount, labels: labels, binCount: binCount,
                                                 temperature: temperature, resamples: resamples, seed: seed)
            case .double(let v):
                return try BootstrapInterval.ece(logits: v, classCount: classCount, labels: labels, binCount: binCount,
                                                 temperature: temperature, resamples: resamples, seed: seed)
            case .mappedFloat32(let array):
                return try array.withFloat32Elements {
                    try BootstrapInterval.ece(logits: $0, classCount: classCount, labels: labels, binCount: binCount,
                                              temperature: temperature, resamples: resamples, seed: seed)
                }
            }
        }
    }

    /// The temperature minimising the NLL of these logits.
    public func fitTemperature() throws -> TemperatureFit {
        try attributing {
            switch values {
            case .float(let v): return try TemperatureScaling.fit(logits: v, classCount: classCount, labels: labels)
            case .double(let v): return try TemperatureScaling.fit(logits: v, classCount: classCount, labels: labels)
            case .mappedFloat32(let array):
                return try array.withFloat32Elements { try TemperatureScaling.fit(logits: $0, classCount: classCount, labels: labels) }
            }
        }
    }

    /// Runs `body`, turning a `CalibrationError` into an error naming the file at fault.
    private func attributing<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CalibrationError {
            if case .labelOutOfRange = error { throw FileError(labelsPath, error.description) }
            throw FileError(logitsPath, error.description)
        }
    }
}

/// Reads logits and labels from safetensors or .npy files, checking shapes
/// (`csm evaluate --logits`; the formats are in `csm evaluate --help`).
public struct EvaluationInputReader {
    /// The tensor names in safetensors files.
    public var logitsTensor: String
    public var labelsTensor: String

    public init(logitsTensor: String = "logits", labelsTensor: String = "labels") {
        self.logitsTensor = logitsTensor
        self.labelsTensor = labelsTensor
    }

    /// Logits [N, K] from `logits` and labels from `labels` (default: the logits file, when
    /// it is safetensors): class ids [N] or [N, 1], or rows [N, K] whose argmax is taken.
    public func read(logits logitsPath: String, labels labelsArgument: String?) throws -> EvaluationSet {
        let labelsPath: String
        if let labelsArgument {
            labelsPath = labelsArgument
        } else if !isNumPy(logitsPath) {
            labelsPath = logitsPath
        } else {
            throw FileError(logitsPath, "a .npy file holds only logits; give the labels with --labels (or --val-labels)")
        }
        let logits = try readArray(logitsPath, tensor: logitsTensor)
        guard logits.shape.count == 2, logits.shape[0] > 0, logits.shape[1] > 0 else {
            throw FileError(logitsPath, "logits must have shape [N, K] with N, K > 0, found \(logits.shape)")
        }
        let n = logits.shape[0], k = logits.shape[1]
        let labelArray = try readArray(labelsPath, tensor: labelsTensor)
        let labels = try hardLabels(labelArray, path: labelsPath, classCount: k)
        guard labels.count == n else {
            throw FileError(labelsPath, "\(labels.count) labels for \(n) rows of logits in \(logitsPath)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= k }) {
            throw FileError(labelsPath, "label \(labels[bad]) of sample \(bad) is outside 0..<\(k) (the logits have \(k) classes)")
        }
        guard case .floating(let values) = logitArrayValues(logits) else {
            throw FileError(logitsPath, "logits must be floating point, found an integer array")
        }
        return EvaluationSet(
            logitsPath: logitsPath, labelsPath: labelsPath, values: values, sampleCount: n, classCount: k, labels: labels)
    }

    // MARK: - Arrays from either format

    /// An array read from a file, not yet interpreted.
    struct RawArray {
        enum Storage {
            case numpy(NumPyArray)
            case safetensors(SafeTensorsFile, String)
        }
        var storage: Storage
        var shape: [Int]
        var isFloatingPoint: Bool
    }

    enum LogitValues {
        case floating(EvaluationSet.Values)
        case integer
    }

    private func isNumPy(_ path: String) -> Bool {
        path.lowercased().hasSuffix(".npy")
    }

    private func readArray(_ path: String, tensor: String) throws -> RawArray {
        guard FileManager.default.fileExists(atPath: path) else { throw FileError(path, "no such file") }
        if isNumPy(path) {
            let array = try NumPyArray(path: path)
            return RawArray(storage: .numpy(array), shape: array.shape, isFloatingPoint: array.dtype.isFloatingPoint)
        }
        let file = try SafeTensorsFile(path: path)
        guard file.contains(tensor) else {
            throw FileError(path, "no tensor '\(tensor)' (tensors: \(file.names.joined(separator: ", ")))")
        }
        let entry = try file.entry(tensor)
        return RawArray(storage: .safetensors(file, tensor), shape: entry.shape, isFloatingPoint: entry.dtype.isFloatingPoint)
    }

    private func logitArrayValues(_ array: RawArray) -> LogitValues {
        guard array.isFloatingPoint else { return .integer }
        switch array.storage {
        case .numpy(let numpy):
            return .floating(numpy.dtype == .float64 ? .double(numpy.doubles()) : .mappedFloat32(numpy))
        case .safetensors(let file, let name):
            // Float conversion cannot fail for a floating-point entry that parsed.
            return .floating(.float((try? file.floats(name)) ?? []))
        }
    }

    private func doubles(_ array: RawArray) throws -> [Double] {
        switch array.storage {
        case .numpy(let numpy): return numpy.doubles()
        case .safetensors(let file, let name):
            return array.isFloatingPoint ? try file.floats(name).map(Double.init) : try file.integers(name).map(Double.init)
        }
    }

    private func integers(_ array: RawArray) throws -> [Int] {
        switch array.storage {
        case .numpy(let numpy): return try numpy.integers()
        case .safetensors(let file, let name): return try file.integers(name)
        }
    }

    /// Class ids from integer ids [N] (or [N, 1]), from floats holding whole numbers, or from
    /// one-hot / soft rows [N, K] by argmax (lowest index on ties).
    private func hardLabels(_ array: RawArray, path: String, classCount: Int) throws -> [Int] {
        let shape = array.shape
        if shape.count == 1 || (shape.count == 2 && shape[1] == 1 && classCount != 1) {
            if !array.isFloatingPoint { return try integers(array) }
            let values = try doubles(array)
            if let bad = values.firstIndex(where: { $0 != $0.rounded() || !$0.isFinite }) {
                throw FileError(path, "label \(values[bad]) of sample \(bad) is not a class id (expected whole numbers, or rows [N, K])")
            }
            return values.map { Int($0) }
        }
        guard shape.count == 2 else {
            throw FileError(path, "labels must have shape [N] or [N, K], found \(shape)")
        }
        guard shape[1] == classCount else {
            throw FileError(path, "label rows have \(shape[1]) columns, the logits have \(classCount) classes")
        }
        let values = try doubles(array)
        var labels = [Int](repeating: 0, count: shape[0])
        for i in 0..<shape[0] {
            var best = 0
            for c in 1..<max(1, classCount) where values[i * classCount + c] > values[i * classCount + best] { best = c }
            labels[i] = best
        }
        return labels
    }
}

extension EvaluationSet {
    /// Writes the logits [N, K] and labels [N] (as float32 class ids) to a safetensors file.
    public func save(to path: String) throws {
        guard case .float(let values) = values else { throw FileError(path, "only float32 logits can be saved") }
        try SafeTensorsWriter.write([
            .init(name: "logits", shape: [sampleCount, classCount], values: values),
            .init(name: "labels", shape: [sampleCount], values: labels.map(Float.init)),
        ], metadata: ["classifier": logitsPath, "data": labelsPath], to: path)
    }
}

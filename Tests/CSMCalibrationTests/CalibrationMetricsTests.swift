import CSMCalibration
import CSMFormats
import CSMTestSupport
import Foundation
import XCTest

final class CalibrationMetricsTests: XCTestCase {
    // MARK: - Reference data

    func testMatchesTheSyntheticFixture() throws {
        let file = try SafeTensorsFile(path: fixturePath("calibration/synthetic-3000x10.safetensors"))
        let shape = try file.shape(of: "logits")
        XCTAssertEqual(shape, [3000, 10])
        let logits = try file.floats("logits")
        let labels = try file.integers("labels")
        let expectedJSON = try XCTUnwrap(file.metadata["expected_metrics_15_bins"])
        let expected = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(expectedJSON.utf8)) as? [String: Double])

        let metrics = try CalibrationMetrics(logits: logits, classCount: shape[1], labels: labels)
        let values = Dictionary(uniqueKeysWithValues: metrics.namedValues.map { ($0.name, $0.value) })
        XCTAssertEqual(Set(expected.keys), Set(values.keys))
        for (name, value) in expected {
            XCTAssertEqual(values[name]!, value, accuracy: 1e-6, name)
        }
        XCTAssertEqual(metrics.sampleCount, 3000)
        XCTAssertEqual(metrics.bins.count, 15)
        XCTAssertEqual(metrics.bins.reduce(0) { $0 + $1.count }, 3000)
        XCTAssertEqual(metrics.adaptiveBins.reduce(0) { $0 + $1.count }, 3000)
        // Equal-count bins of 3000 confidences hold 200 ± 1 samples each (the interpolated
        // edges put the sample on an edge in the lower bin).
        XCTAssertTrue(metrics.adaptiveBins.allSatisfy { abs($0.count - 200) <= 1 }, "\(metrics.adaptiveBins.map(\.count))")
    }

    func testMatchesTheSlowReferenceForManyShapesAndBinCounts() throws {
        let cases: [(n: Int, k: Int, bins: Int, sharpness: Double)] = [
            (1, 3, 15, 1), (7, 2, 1, 3), (500, 10, 15, 2), (600, 100, 20, 1), (997, 5, 7, 0.5),
            (40_000, 4, 10, 2.5),  // more rows than one parallel chunk
        ]
        for (index, c) in cases.enumerated() {
            let (logits, labels) = syntheticLogits(samples: c.n, classes: c.k, sharpness: c.sharpness, seed: UInt64(index))
            let metrics = try CalibrationMetrics(logits: logits, classCount: c.k, labels: labels, binCount: c.bins)
            let reference = ReferenceMetrics(logits: logits, classes: c.k, labels: labels, bins: c.bins)
            let label = "case \(index): n \(c.n), k \(c.k), bins \(c.bins)"
            XCTAssertEqual(metrics.accuracy, reference.accuracy, accuracy: 1e-12, label)
            XCTAssertEqual(metrics.nll, reference.nll, accuracy: 1e-10, label)
            XCTAssertEqual(metrics.brier, reference.brier, accuracy: 1e-10, label)
            XCTAssertEqual(metrics.ece, reference.ece, accuracy: 1e-10, label)
            XCTAssertEqual(metrics.mce, reference.mce, accuracy: 1e-10, label)
            XCTAssertEqual(metrics.adaece, reference.adaece, accuracy: 1e-10, label)
            XCTAssertEqual(metrics.cece, reference.cece, accuracy: 1e-10, label)
            XCTAssertEqual(metrics.classwiseECE.count, c.k)
        }
    }

    func testFloatAndDoubleLogitsAgree() throws {
        let (logits, labels) = syntheticLogits(samples: 300, classes: 6, seed: 42)
        let floats = logits.map { Float($0) }
        let fromFloat = try CalibrationMetrics(logits: floats, classCount: 6, labels: labels)
        let fromDouble = try CalibrationMetrics(logits: floats.map(Double.init), classCount: 6, labels: labels)
        XCTAssertEqual(fromFloat, fromDouble)
    }

    /// Logits read from a .npy file in place (no copy) give the same metrics as an array.
    func testNumPyLogitsInPlace() throws {
        let values: [Float] = [0.5, -1, 2, 3, -0.25, 9]
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
        let padded = header + String(repeating: " ", count: 63 - (10 + header.count) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(padded.utf8.count & 0xff), UInt8(padded.utf8.count >> 8)])
        data.append(Data(padded.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        let array = try NumPyArray(data: data, path: "m.npy")
        let metrics = try array.withFloat32Elements { try CalibrationMetrics(logits: $0, classCount: 2, labels: [0, 1, 1]) }
        XCTAssertEqual(metrics, try CalibrationMetrics(logits: values, classCount: 2, labels: [0, 1, 1]))
    }

    func testTemperatureDividesTheLogits() throws {
        let (logits, labels) = syntheticLogits(samples: 400, classes: 5, sharpness: 3, seed: 9)
        let scaled = try CalibrationMetrics(logits: logits, classCount: 5, labels: labels, temperature: 2.5)
        let divided = try CalibrationMetrics(logits: logits.map { $0 / 2.5 }, classCount: 5, labels: labels)
        XCTAssertEqual(scaled.nll, divided.nll, accuracy: 1e-12)
        XCTAssertEqual(scaled.ece, divided.ece, accuracy: 1e-12)
        XCTAssertEqual(scaled.cece, divided.cece, accuracy: 1e-12)
        XCTAssertEqual(scaled.temperature, 2.5)
    }

    // MARK: - Hand-made cases

    func testASmallCaseWorkedByHand() throws {
        // Two classes. Sample 0: logits (0, 0) → p = (0.5, 0.5), predicted 0 (tie), label 0.
        // Sample 1: logits (0, ln 4) → p = (0.2, 0.8), predicted 1, label 0 (wrong).
        let logits: [Double] = [0, 0, 0, log(4)]
        let metrics = try CalibrationMetrics(logits: logits, classCount: 2, labels: [0, 0], binCount: 4)
        XCTAssertEqual(metrics.accuracy, 0.5)
        XCTAssertEqual(metrics.nll, (log(2) + log(5)) / 2, accuracy: 1e-15)
        XCTAssertEqual(metrics.brier, (0.5 + 1.28) / 2, accuracy: 1e-15)
        // Confidence 0.5 lies on the edge between bins 1 (0.25, 0.5] and 2: it goes in bin 1.
        XCTAssertEqual(metrics.bins.map(\.count), [0, 1, 0, 1])
        XCTAssertEqual(metrics.bins[1].accuracy, 1)
        XCTAssertEqual(metrics.bins[3].meanConfidence, 0.8, accuracy: 1e-15)
        // |1 − 0.5| and |0 − 0.8|, each with weight 1/2.
        XCTAssertEqual(metrics.ece, 0.65, accuracy: 1e-15)
        XCTAssertEqual(metrics.mce, 0.8, accuracy: 1e-15)
        // Class 0: p0 = 0.5 (hit) in bin 1, p0 = 0.2 (hit) in bin 0 → (0.5 + 0.8) / 2.
        // Class 1: p1 = 0.5 (miss) in bin 1, p1 = 0.8 (miss) in bin 3 → (0.5 + 0.8) / 2.
        XCTAssertEqual(metrics.classwiseECE[0], 0.65, accuracy: 1e-15)
        XCTAssertEqual(metrics.classwiseECE[1], 0.65, accuracy: 1e-15)
        XCTAssertEqual(metrics.cece, 0.65, accuracy: 1e-15)
        // Equal-count edges of two samples, interp(0, 0.5, 1, 1.5, 2): 0.5, 0.65, 0.8, 0.8, 0.8;
        // 0.5 fills the first bin, 0.8 the second, the last two are empty.
        XCTAssertEqual(metrics.adaptiveBins.map(\.count), [1, 1, 0, 0])
        XCTAssertEqual(metrics.adaptiveBins[0].upper, 0.65, accuracy: 1e-15)
        XCTAssertEqual(metrics.adaece, 0.65, accuracy: 1e-15)
    }

    func testConfidencesOnBinEdgesFallInTheLowerBin() throws {
        let bins = 15
        let edges = CalibrationBinning.equalWidthEdges(bins)
        XCTAssertEqual(edges.first, 0)
        XCTAssertEqual(edges.last, 1)
        let onEdges = Array(edges[1...])  // 1/15, 2/15, …, 1
        let binned = try CalibrationBinning.equalWidth(
            confidences: onEdges, outcomes: [Double](repeating: 1, count: bins), binCount: bins)
        XCTAssertEqual(binned.map(\.count), [Int](repeating: 1, count: bins), "edge b/B belongs to bin b − 1")
        // Just above an edge moves up one bin; zero goes in the first bin.
        let nudged = try CalibrationBinning.equalWidth(
            confidences: [edges[3].nextUp, 0, 1e-300], outcomes: [0, 0, 0], binCount: bins)
        XCTAssertEqual(nudged[3].count, 1)
        XCTAssertEqual(nudged[0].count, 2)
    }

    func testEmptyBinsDoNotCount() throws {
        let bins = try CalibrationBinning.equalWidth(confidences: [0.95, 0.95, 0.92], outcomes: [1, 0, 1], binCount: 10)
        XCTAssertEqual(bins.filter { $0.count > 0 }.count, 1)
        XCTAssertEqual(bins[0].meanConfidence, 0)
        XCTAssertEqual(bins[9].meanConfidence, (0.95 + 0.95 + 0.92) / 3, accuracy: 1e-15)
        let expected = abs((0.95 + 0.95 + 0.92) / 3 - 2.0 / 3)
        XCTAssertEqual(CalibrationBinning.expectedError(bins), expected, accuracy: 1e-15)
        XCTAssertEqual(CalibrationBinning.maximumError(bins), expected, accuracy: 1e-15)
    }

    func testTiedConfidencesShareOneAdaptiveBin() throws {
        // All rows identical: every confidence ties, all equal-count edges coincide, so the
        // first bin takes every sample and AdaECE equals ECE.
        let row: [Double] = [2, 0, -1]
        let logits = Array([[Double]](repeating: row, count: 30).joined())
        let labels = (0..<30).map { $0 % 3 == 0 ? 1 : 0 }
        let metrics = try CalibrationMetrics(logits: logits, classCount: 3, labels: labels)
        XCTAssertEqual(metrics.adaptiveBins[0].count, 30)
        XCTAssertEqual(metrics.adaptiveBins.dropFirst().map(\.count), [Int](repeating: 0, count: 14))
        XCTAssertEqual(metrics.adaece, metrics.ece, accuracy: 1e-15)
        XCTAssertEqual(metrics.accuracy, 2.0 / 3, accuracy: 1e-15)
    }

    func testEqualCountEdgesInterpolateTheSortedConfidences() throws {
        // numpy.interp(linspace(0, 12, 5), arange(12), sorted) = sorted[0, 3, 6, 9] and the
        // maximum: 1/13, 4/13, 7/13, 10/13, 12/13. With (lower, upper] bins the first bin
        // (closed below) takes 1…4, then 5…7, 8…10 and 11…12.
        let confidences = (1...12).map { Double($0) / 13 }
        let bins = try CalibrationBinning.equalCount(confidences: confidences.reversed(), outcomes: [Double](repeating: 1, count: 12), binCount: 4)
        XCTAssertEqual(bins.map(\.count), [4, 3, 3, 2])
        XCTAssertEqual(bins[1].lower, 4.0 / 13, accuracy: 1e-15)
        XCTAssertEqual(bins[0].lower, 1.0 / 13, accuracy: 1e-15)
        XCTAssertEqual(bins[3].upper, 12.0 / 13, accuracy: 1e-15)
    }

    func testArgmaxTiesPickTheLowestClass() throws {
        let metrics = try CalibrationMetrics(logits: [1, 1, 0] as [Double], classCount: 3, labels: [1])
        XCTAssertEqual(metrics.accuracy, 0)
        let other = try CalibrationMetrics(logits: [1, 1, 0] as [Double], classCount: 3, labels: [0])
        XCTAssertEqual(other.accuracy, 1)
    }

    func testASingleClassPresent() throws {
        // Every label is class 0 of 3; class-wise ECE still averages over all 3 classes.
        let (logits, _) = syntheticLogits(samples: 200, classes: 3, seed: 5)
        let labels = [Int](repeating: 0, count: 200)
        let metrics = try CalibrationMetrics(logits: logits, classCount: 3, labels: labels, binCount: 15)
        let reference = ReferenceMetrics(logits: logits, classes: 3, labels: labels, bins: 15)
        XCTAssertEqual(metrics.cece, reference.cece, accuracy: 1e-12)
        XCTAssertEqual(metrics.cece, metrics.classwiseECE.reduce(0, +) / 3, accuracy: 1e-15)
        // Class 2 never occurs, so its ECE is its mean probability.
        let p2 = try Softmax.probabilities(logits: logits, classCount: 3).enumerated().filter { $0.offset % 3 == 2 }.map(\.element)
        XCTAssertEqual(metrics.classwiseECE[2], p2.reduce(0, +) / 200, accuracy: 1e-12)
    }

    func testOneClassOnly() throws {
        let metrics = try CalibrationMetrics(logits: [3, -2, 0] as [Double], classCount: 1, labels: [0, 0, 0])
        XCTAssertEqual(metrics.accuracy, 1)
        XCTAssertEqual(metrics.nll, 0)
        XCTAssertEqual(metrics.ece, 0)
        XCTAssertEqual(metrics.cece, 0)
    }

    func testExtremeLogitsStayFinite() throws {
        let logits: [Double] = [1000, -1000, 0, -800, 800, 0]
        let metrics = try CalibrationMetrics(logits: logits, classCount: 3, labels: [1, 1])
        XCTAssertEqual(metrics.nll, 1000, accuracy: 1e-9)  // sample 0: p1 = e^-2000, sample 1: p1 ≈ 1
        XCTAssertEqual(metrics.accuracy, 0.5)
        XCTAssertTrue(metrics.brier.isFinite)
    }

    // MARK: - Errors

    func testRejectsBadInputs() {
        XCTAssertThrowsError(try CalibrationMetrics(logits: [0, 1, 2] as [Double], classCount: 2, labels: [0, 1])) {
            guard case CalibrationError.shapeMismatch = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try CalibrationMetrics(logits: [0, 1, 2, 3] as [Double], classCount: 2, labels: [0, 2])) {
            XCTAssertEqual($0 as? CalibrationError, .labelOutOfRange(sample: 1, label: 2, classCount: 2))
        }
        XCTAssertThrowsError(try CalibrationMetrics(logits: [0, 1, .nan, 3] as [Double], classCount: 2, labels: [0, 1])) {
            XCTAssertEqual($0 as? CalibrationError, .nonFiniteLogit(sample: 1))
        }
        XCTAssertThrowsError(try CalibrationMetrics(logits: [0, .infinity] as [Float], classCount: 2, labels: [0])) {
            XCTAssertEqual($0 as? CalibrationError, .nonFiniteLogit(sample: 0))
        }
        XCTAssertThrowsError(try CalibrationMetrics(logits: [0, 1] as [Double], classCount: 2, labels: [0], binCount: 0))
        XCTAssertThrowsError(try CalibrationMetrics(logits: [0, 1] as [Double], classCount: 2, labels: [0], temperature: 0))
        XCTAssertThrowsError(try CalibrationMetrics(logits: [] as [Double], classCount: 2, labels: []))
    }
}

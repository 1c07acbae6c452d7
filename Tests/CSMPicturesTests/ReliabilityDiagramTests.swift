import CSMCalibration
import CSMPictures
import CSMTestSupport
import Foundation
import XCTest

final class ReliabilityDiagramTests: XCTestCase {
    private let accuracyBlue = Color(hex: 0x2f6fb0)

    private func count(_ color: Color, in canvas: Canvas) -> Int {
        var total = 0
        for y in 0..<canvas.height {
            for x in 0..<canvas.width where canvas.pixel(x: x, y: y) == color { total += 1 }
        }
        return total
    }

    func testBarsFollowTheAccuracy() throws {
        // One sample, confidence ≈ 1 in the last bin. Right: a full-height accuracy bar.
        // Wrong: no accuracy bar (only the legend swatch is blue), a full-height gap instead.
        let right = try CalibrationMetrics(logits: [12, 0] as [Double], classCount: 2, labels: [0])
        let wrong = try CalibrationMetrics(logits: [12, 0] as [Double], classCount: 2, labels: [1])
        let rightCanvas = ReliabilityDiagram(metrics: right).render()
        let wrongCanvas = ReliabilityDiagram(metrics: wrong).render()
        let barArea = 420 / 15 * 420
        XCTAssertGreaterThan(count(accuracyBlue, in: rightCanvas), barArea * 8 / 10)
        XCTAssertLessThan(count(accuracyBlue, in: wrongCanvas), 22 * 14 + 1)
        XCTAssertNotEqual(rightCanvas.pixels, wrongCanvas.pixels)
    }

    func testPanelsSitSideBySideAndWriteAPNG() throws {
        let (logits, labels) = syntheticLogits(samples: 500, classes: 4, sharpness: 2, seed: 1)
        let raw = try CalibrationMetrics(logits: logits, classCount: 4, labels: labels)
        let scaled = try CalibrationMetrics(logits: logits, classCount: 4, labels: labels, temperature: 2)
        let one = ReliabilityDiagram(metrics: raw).render()
        let two = ReliabilityDiagram(panels: [.init(title: "Before", metrics: raw), .init(title: "After", metrics: scaled)]).render()
        XCTAssertEqual(two.width, 2 * one.width)
        XCTAssertEqual(two.height, one.height)

        let path = NSTemporaryDirectory() + "csm-reliability-\(UUID().uuidString).png"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ReliabilityDiagram(metrics: raw).writePNG(path: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
    }
}

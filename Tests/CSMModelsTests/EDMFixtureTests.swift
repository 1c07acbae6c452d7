import CSMFormats
import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// Path of a file under Tests/Fixtures.
func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name).path
}

/// Every EDM network fixture, run through csm's port and compared with the reference
/// implementation's D(x; σ, c): per sample, max|error| ≤ 1e-4·(1 + max|ref|).
final class EDMFixtureTests: XCTestCase {
    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try EDMModel(path: fixture("edm/\(name).safetensors"))
        let reference = try SafeTensorsFile(path: fixture("edm/\(name).denoise.safetensors"))
        let shape = try reference.shape(of: "x")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let x = FeatureMap(nchw: try reference.floats("x"), count: n, channels: c, height: h, width: w)
        let denoised = model.denoise(x, sigma: try reference.floats("sigma"), classLabels: try reference.floats("class_labels"))
        let got = denoised.nchw, expected = try reference.floats("denoised")
        let per = c * h * w
        var worstRatio: Float = 0
        for i in 0..<n {
            var worst: Float = 0, largest: Float = 0
            for j in 0..<per {
                worst = max(worst, abs(got[i * per + j] - expected[i * per + j]))
                largest = max(largest, abs(expected[i * per + j]))
            }
            XCTAssertLessThanOrEqual(worst, 1e-4 * (1 + largest), "\(name) sample \(i)", file: file, line: line)
            worstRatio = max(worstRatio, worst / (1e-4 * (1 + largest)))
        }
        print("\(name): worst error is \(worstRatio) of the tolerance")
    }

    /// At `--precision bf16` every fixture network stays near the reference: relative rms
    /// error of D below 1 % (measured: 0.12–0.33 %).
    func testBF16StaysNearTheReference() throws {
        for name in ["ddpmpp-vp-28x1", "ddpmpp-edm-32x3", "ncsnpp-ve-32x3", "adm-edm-32x3-fp16"] {
            let model = try EDMModel(path: fixture("edm/\(name).safetensors"), precision: .bf16)
            let reference = try SafeTensorsFile(path: fixture("edm/\(name).denoise.safetensors"))
            let shape = try reference.shape(of: "x")
            let x = FeatureMap(nchw: try reference.floats("x"), count: shape[0], channels: shape[1], height: shape[2], width: shape[3])
            let got = model.denoise(x, sigma: try reference.floats("sigma"), classLabels: try reference.floats("class_labels")).nchw
            let expected = try reference.floats("denoised")
            var error = 0.0, size = 0.0
            for i in 0..<got.count {
                error += Double(got[i] - expected[i]) * Double(got[i] - expected[i])
                size += Double(expected[i]) * Double(expected[i])
            }
            let relative = (error / size).squareRoot()
            print("\(name) at bf16: relative rms error \(relative)")
            XCTAssertLessThan(relative, 0.01, name)
            XCTAssertGreaterThan(relative, 0, "\(name): zero error means fp32 ran")
        }
    }

    func testDDPMppVP28x1() throws { try check("ddpmpp-vp-28x1") }
    func testDDPMppEDM32x3() throws { try check("ddpmpp-edm-32x3") }
    func testNCSNppVE32x3() throws { try check("ncsnpp-ve-32x3") }
    func testADMEDM32x3FP16() throws { try check("adm-edm-32x3-fp16") }
}

import CSMFormats
import CSMModels
import CSMNumerics
import Foundation
import XCTest

/// `TrainableUNet`: its denoiser against the reference implementation's fixtures, and its
/// gradient of mean(D) against central finite differences of its own forward.
final class TrainableUNetTests: XCTestCase {
    struct Inputs {
        var x: FeatureMap
        var sigma: [Float]
        var labels: [Float]
        var denoised: [Float]
        var labelDimension: Int
    }

    func inputs(_ name: String) throws -> Inputs {
        let reference = try SafeTensorsFile(path: fixture("edm/\(name).denoise.safetensors"))
        let shape = try reference.shape(of: "x")
        let x = FeatureMap(nchw: try reference.floats("x"), count: shape[0], channels: shape[1], height: shape[2], width: shape[3])
        let labels = try reference.floats("class_labels")
        return Inputs(x: x, sigma: try reference.floats("sigma"), labels: labels, denoised: try reference.floats("denoised"),
                      labelDimension: labels.count / shape[0])
    }

    /// D equals the reference's and `EDMModel.denoise`'s within 1e-4·(1 + max|ref|) per sample.
    func checkDenoiser(_ name: String) throws {
        let path = fixture("edm/\(name).safetensors")
        let network = try TrainableUNet(path: path)
        let model = try EDMModel(path: path)
        let data = try inputs(name)
        let got = network.denoise(data.x, sigma: data.sigma, classLabels: data.labels).nchw
        let inference = model.denoise(data.x, sigma: data.sigma, classLabels: data.labels).nchw
        let n = data.x.count, per = got.count / n
        var worstRatio: Float = 0
        for (reference, label) in [(data.denoised, "reference"), (inference, "EDMModel")] {
            for i in 0..<n {
                var worst: Float = 0, largest: Float = 0
                for j in 0..<per {
                    worst = max(worst, abs(got[i * per + j] - reference[i * per + j]))
                    largest = max(largest, abs(reference[i * per + j]))
                }
                XCTAssertLessThanOrEqual(worst, 1e-4 * (1 + largest), "\(name) sample \(i) against \(label)")
                worstRatio = max(worstRatio, worst / (1e-4 * (1 + largest)))
            }
        }
        print("\(name): worst denoiser error is \(worstRatio) of the tolerance")
        // The flat parameters cover every stored tensor but the buffers.
        let file = try SafeTensorsFile(path: path)
        let expected = file.names.filter { !$0.hasSuffix(".resample_filter") && $0 != "model.map_noise.freqs" }
        XCTAssertEqual(network.parameterNames, expected)
        XCTAssertEqual(network.parameterCount, expected.reduce(0) { $0 + file.entries[$1]!.elementCount })
        XCTAssertEqual(network.replacingParameters(network.parameters).parameters, network.parameters)
    }

    func testDenoiserDDPMppVP28x1() throws { try checkDenoiser("ddpmpp-vp-28x1") }
    func testDenoiserDDPMppEDM32x3() throws { try checkDenoiser("ddpmpp-edm-32x3") }
    func testDenoiserNCSNppVE32x3() throws { try checkDenoiser("ncsnpp-ve-32x3") }

    /// ADM: adaptive scale, two attention heads, a resampling-only skip, map_label without a bias.
    func testDenoiserADM32x3() throws { try checkDenoiser("adm-edm-32x3-fp16") }

    /// mean(D(x; σ, c)) of image `index` in Double, from the network's own Float forward.
    func loss(_ network: TrainableUNet, _ data: Inputs, _ index: Int) -> Double {
        let d = network.denoise(data.x.slice(index..<(index + 1)), sigma: [data.sigma[index]],
                                classLabels: Array(data.labels[(index * data.labelDimension)..<((index + 1) * data.labelDimension)]))
        return d.values.reduce(0.0) { $0 + Double($1) } / Double(d.values.count)
    }

    func gradient(_ network: TrainableUNet, _ data: Inputs, _ index: Int) -> [Float] {
        network.meanDenoiserGradient(data.x.slice(index..<(index + 1)), sigma: data.sigma[index],
                                     classLabels: Array(data.labels[(index * data.labelDimension)..<((index + 1) * data.labelDimension)]))
    }

    /// ∂mean(D)/∂θ on 39 parameters of 13 tensors spread over the network (first and last
    /// convolutions, block convolutions, norms, skip, attention, the embedding MLP and
    /// map_label) against central differences with a step of 1 % of the tensor's rms.
    func testGradientMatchesFiniteDifferences() throws {
        try checkGradient(index: 0)
    }

    func checkGradient(index: Int, breaking: ((inout [Float], TrainableUNet) -> Void)? = nil) throws -> Bool {
        let name = "ddpmpp-vp-28x1"
        let network = try TrainableUNet(path: fixture("edm/\(name).safetensors"))
        let data = try inputs(name)
        var g = gradient(network, data, index)
        breaking?(&g, network)
        XCTAssertEqual(g.count, network.parameterCount)
        let theta = network.parameters
        let tensors = ["model.enc.28x28_conv.weight", "model.enc.28x28_conv.bias", "model.enc.14x14_block0.conv0.weight",
                       "model.enc.7x7_block1.norm1.weight", "model.enc.7x7_block1.qkv.weight", "model.dec.7x7_in0.proj.weight",
                       "model.dec.14x14_up.skip.weight", "model.dec.28x28_block2.conv1.weight", "model.dec.28x28_aux_norm.weight",
                       "model.dec.28x28_aux_conv.weight", "model.map_layer0.weight", "model.map_layer1.bias", "model.map_label.bias"]
        var pass = true
        var worst = 0.0
        var pairs: [(label: String, analytic: Double, fd: Double)] = []
        for tensor in tensors {
            let t = try XCTUnwrap(network.parameterNames.firstIndex(of: tensor), tensor)
            let start = network.parameterOffsets[t], count = network.parameterOffsets[t + 1] - start
            let rms = (theta[start..<(start + count)].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(count)).squareRoot()
            let step = 1e-2 * max(rms, 1e-2)
            for k in [0, count / 2, count - 1] {
                var plus = theta, minus = theta
                plus[start + k] += Float(step)
                minus[start + k] -= Float(step)
                let actualStep = (Double(plus[start + k]) - Double(minus[start + k])) / 2
                let fd = (loss(network.replacingParameters(plus), data, index) - loss(network.replacingParameters(minus), data, index))
                    / (2 * actualStep)
                pairs.append(("\(tensor)[\(k)]", Double(g[start + k]), fd))
            }
        }
        // Within 1 % of the difference, plus 0.3 % of the largest one checked (the Float forward's
        // rounding makes differences of the smallest gradients noisy at about that level).
        let largest = pairs.map { abs($0.fd) }.max()!
        for (label, analytic, fd) in pairs {
            let error = abs(analytic - fd), tolerance = 1e-2 * abs(fd) + 3e-3 * largest
            worst = max(worst, error / tolerance)
            if error > tolerance {
                pass = false
                if breaking == nil { XCTFail("\(label): gradient \(analytic), central difference \(fd)") }
            }
        }
        // And along one direction through every parameter at once.
        var direction = [Float](repeating: 0, count: theta.count)
        var state: UInt64 = 12345
        for i in direction.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            direction[i] = Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000 * max(abs(theta[i]), 1e-2) * 1e-2
        }
        let plus = zip(theta, direction).map { $0 + $1 }, minus = zip(theta, direction).map { $0 - $1 }
        let fd = (loss(network.replacingParameters(plus), data, index) - loss(network.replacingParameters(minus), data, index)) / 2
        let analytic = zip(g, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let directionalError = abs(analytic - fd) / abs(fd)
        print("gradient: largest checked \(largest), worst error is \(worst) of the tolerance; directional derivative \(analytic) against \(fd)")
        if directionalError > 1e-2 {
            pass = false
            if breaking == nil { XCTFail("directional derivative \(analytic), central difference \(fd)") }
        }
        return pass
    }

    /// The other configurations (EDM preconditioning with 3 channels; NCSN++'s Fourier
    /// embedding, residual encoder and [1, 3, 3, 1] filter at VE; ADM's DhariwalUNet): per
    /// resolution of the encoder and decoder, for the embedding and ADM's output layers, the
    /// derivative along a random direction through all of its parameters against its central
    /// difference, within 1 %.
    func testDirectionalDerivativesOtherConfigurations() throws {
        let song = ["model.enc.32x32", "model.enc.16x16", "model.enc.8x8", "model.dec.8x8", "model.dec.16x16", "model.dec.32x32", "model.map_"]
        let adm = ["model.enc.32x32", "model.enc.16x16", "model.dec.16x16", "model.dec.32x32", "model.map_", "model.out_"]
        for (name, groups) in [("ddpmpp-edm-32x3", song), ("ncsnpp-ve-32x3", song), ("adm-edm-32x3-fp16", adm)] {
            let network = try TrainableUNet(path: fixture("edm/\(name).safetensors"))
            let data = try inputs(name)
            let g = gradient(network, data, 1)
            let theta = network.parameters
            for group in groups {
                var state: UInt64 = 987
                var direction = [Float](repeating: 0, count: theta.count)
                for (t, tensor) in network.parameterNames.enumerated() where tensor.hasPrefix(group) {
                    for i in network.parameterOffsets[t]..<network.parameterOffsets[t + 1] {
                        state = state &* 6364136223846793005 &+ 1442695040888963407
                        direction[i] = Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000 * max(abs(theta[i]), 1e-2) * 1e-2
                    }
                }
                let plus = zip(theta, direction).map { $0 + $1 }, minus = zip(theta, direction).map { $0 - $1 }
                let fd = (loss(network.replacingParameters(plus), data, 1) - loss(network.replacingParameters(minus), data, 1)) / 2
                let analytic = zip(g, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                print("\(name) \(group): directional derivative \(analytic) against \(fd)")
                XCTAssertLessThan(abs(analytic - fd), 1e-2 * abs(fd), "\(name) \(group)")
            }
        }
    }

    /// The check fails when one gradient is wrong.
    func testGradientCheckCanFail() throws {
        let failed = try !checkGradient(index: 0) { g, network in
            let t = network.parameterNames.firstIndex(of: "model.dec.28x28_aux_norm.weight")!
            g[network.parameterOffsets[t] + 8] *= 1.1
        }
        XCTAssertTrue(failed)
    }
}

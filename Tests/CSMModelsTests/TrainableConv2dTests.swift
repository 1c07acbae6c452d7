import CSMModels
import CSMNumerics
import CSMRandom
import XCTest

/// `TrainableConv2d` (EDM's Conv2d with raw weights) against a float64 reference of the whole
/// layer written here from the definitions (Resample.swift's doc comments, a direct
/// convolution, EDM's order of resampling and convolution): the Float forward against the
/// reference, and dL/dx, dL/dweight, dL/dbias against float64 central finite differences of
/// the reference for L = Σ r·y.
final class TrainableConv2dTests: XCTestCase {
    /// One layer configuration and the input size it runs on.
    struct Case {
        var name: String
        var kernel: Int
        var up = false
        var down = false
        var fused = false
        var taps: [Float]
        var size: Int
        var inputChannels = 3
        var outputChannels = 4
        var bias = true
    }

    /// An NHWC map of Doubles.
    struct Map {
        var n: Int, h: Int, w: Int, c: Int
        var v: [Double]
        init(n: Int, h: Int, w: Int, c: Int, v: [Double]? = nil) {
            self.n = n; self.h = h; self.w = w; self.c = c
            self.v = v ?? [Double](repeating: 0, count: n * h * w * c)
        }
        func index(_ i: Int, _ y: Int, _ x: Int, _ ch: Int) -> Int { ((i * h + y) * w + x) * c + ch }
    }

    // MARK: float64 reference

    /// down: y[oy, ox] = Σ f[ky]·f[kx]·x[2·oy − p + ky, 2·ox − p + kx], output (H + 2p − len)/2 + 1.
    static func down(_ x: Map, _ f: [Double], padding p: Int) -> Map {
        let l = f.count
        var y = Map(n: x.n, h: (x.h + 2 * p - l) / 2 + 1, w: (x.w + 2 * p - l) / 2 + 1, c: x.c)
        for i in 0..<x.n {
            for oy in 0..<y.h {
                for ox in 0..<y.w {
                    for ky in 0..<l {
                        let iy = 2 * oy - p + ky
                        guard iy >= 0 && iy < x.h else { continue }
                        for kx in 0..<l {
                            let ix = 2 * ox - p + kx
                            guard ix >= 0 && ix < x.w else { continue }
                            for ch in 0..<x.c { y.v[y.index(i, oy, ox, ch)] += f[ky] * f[kx] * x.v[x.index(i, iy, ix, ch)] }
                        }
                    }
                }
            }
        }
        return y
    }

    /// up: transposed depthwise conv with 4·f⊗f, stride 2, padding p, output 2(H − 1) − 2p + len:
    /// x[sy, sx] adds 4·f[ky]·f[kx]·x[sy, sx] to y[2·sy − p + ky, 2·sx − p + kx].
    static func up(_ x: Map, _ f: [Double], padding p: Int) -> Map {
        let l = f.count
        var y = Map(n: x.n, h: 2 * (x.h - 1) - 2 * p + l, w: 2 * (x.w - 1) - 2 * p + l, c: x.c)
        for i in 0..<x.n {
            for sy in 0..<x.h {
                for sx in 0..<x.w {
                    for ky in 0..<l {
                        let oy = 2 * sy - p + ky
                        guard oy >= 0 && oy < y.h else { continue }
                        for kx in 0..<l {
                            let ox = 2 * sx - p + kx
                            guard ox >= 0 && ox < y.w else { continue }
                            for ch in 0..<x.c { y.v[y.index(i, oy, ox, ch)] += 4 * f[ky] * f[kx] * x.v[x.index(i, sy, sx, ch)] }
                        }
                    }
                }
            }
        }
        return y
    }

    /// y[co] = b[co] + Σ w[co, ci, ky, kx]·x[oy − p + ky, ox − p + kx, ci], w in PyTorch layout.
    static func conv(_ x: Map, _ w: [Double], _ b: [Double]?, cout: Int, k: Int, padding p: Int) -> Map {
        var y = Map(n: x.n, h: x.h + 2 * p - k + 1, w: x.w + 2 * p - k + 1, c: cout)
        for i in 0..<x.n {
            for oy in 0..<y.h {
                for ox in 0..<y.w {
                    for co in 0..<cout {
                        var s = b?[co] ?? 0
                        for ci in 0..<x.c {
                            for ky in 0..<k {
                                let iy = oy - p + ky
                                guard iy >= 0 && iy < x.h else { continue }
                                for kx in 0..<k {
                                    let ix = ox - p + kx
                                    guard ix >= 0 && ix < x.w else { continue }
                                    s += w[((co * x.c + ci) * k + ky) * k + kx] * x.v[x.index(i, iy, ix, ci)]
                                }
                            }
                        }
                        y.v[y.index(i, oy, ox, co)] = s
                    }
                }
            }
        }
        return y
    }

    /// EDM's Conv2d.forward: fused up, fused down, or resample then convolve.
    static func layer(_ c: Case, _ x: Map, _ w: [Double], _ b: [Double]?) -> Map {
        let total = c.taps.reduce(0) { $0 + Double($1) }
        let f = c.taps.map { Double($0) / total }
        let fPad = (f.count - 1) / 2, wPad = c.kernel / 2
        if c.fused && c.kernel > 0 && c.up {
            return conv(up(x, f, padding: wPad + fPad), w, b, cout: c.outputChannels, k: c.kernel, padding: 0)
        }
        if c.fused && c.kernel > 0 && c.down {
            return down(conv(x, w, b, cout: c.outputChannels, k: c.kernel, padding: wPad + fPad), f, padding: 0)
        }
        var h = x
        if c.up { h = up(h, f, padding: fPad) }
        if c.down { h = down(h, f, padding: fPad) }
        if c.kernel > 0 { h = conv(h, w, b, cout: c.outputChannels, k: c.kernel, padding: wPad) }
        return h
    }

    // MARK: helpers

    /// Deterministic values in [−1, 1) (SplitMix64).
    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(state: seed)
        return (0..<count).map { _ in Float(SplitMix64.unit(generator.next()) * 2 - 1) }
    }

    /// dL/dθ by central differences in Double, for L(θ) given as a closure.
    static func numericGradient(_ theta: [Double], step: Double = 1e-3, _ loss: ([Double]) -> Double) -> [Double] {
        var t = theta
        return (0..<theta.count).map { i in
            t[i] = theta[i] + step
            let plus = loss(t)
            t[i] = theta[i] - step
            let minus = loss(t)
            t[i] = theta[i]
            return (plus - minus) / (2 * step)
        }
    }

    /// max|got − expected| / max|expected|; infinity on a size mismatch or an all-zero expectation.
    static func relativeError(_ got: [Float], _ expected: [Double]) -> Double {
        let scale = expected.map(abs).max() ?? 0
        guard got.count == expected.count, scale > 0 else { return .infinity }
        return zip(got, expected).map { abs(Double($0) - $1) }.max()! / scale
    }

    /// Fails when `relativeError` is above `tolerance` (so also on an all-zero expectation);
    /// returns the error.
    @discardableResult
    static func assertRelativelyClose(_ got: [Float], _ expected: [Double], tolerance: Double, _ label: String,
                                      file: StaticString = #filePath, line: UInt = #line) -> Double {
        let error = relativeError(got, expected)
        XCTAssertLessThanOrEqual(error, tolerance, "\(label): relative error (\(got.count) values, \(expected.count) expected)",
                                 file: file, line: line)
        return error
    }

    // MARK: the check

    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) {
        let n = 2, k = c.kernel
        let seed = UInt64(c.name.utf8.reduce(7) { $0 &* 31 &+ Int($1) }.magnitude)
        let x = FeatureMap(count: n, height: c.size, width: c.size, channels: c.inputChannels,
                           values: Self.random(n * c.size * c.size * c.inputChannels, seed: seed))
        let weight = Self.random(c.outputChannels * c.inputChannels * k * k, seed: seed &+ 1)
        let bias = c.bias && k > 0 ? Self.random(c.outputChannels, seed: seed &+ 2) : nil
        let layer = TrainableConv2d(weight: weight, bias: bias, inputChannels: c.inputChannels, outputChannels: c.outputChannels,
                                    kernel: k, up: c.up, down: c.down, filter: ResampleFilter(c.taps), fused: c.fused)

        let xd = Map(n: n, h: c.size, w: c.size, c: c.inputChannels, v: x.values.map(Double.init))
        let wd = weight.map(Double.init), bd = bias?.map(Double.init)
        let reference = Self.layer(c, xd, wd, bd)

        // Forward.
        let y = layer.forward(x)
        XCTAssertEqual([y.count, y.height, y.width, y.channels], [reference.n, reference.h, reference.w, reference.c],
                       "\(c.name): output shape", file: file, line: line)
        let forwardError = Self.assertRelativelyClose(y.values, reference.v, tolerance: 1e-5, "\(c.name): forward", file: file, line: line)

        // Backward for L = Σ r·y.
        let r = Self.random(reference.v.count, seed: seed &+ 3)
        let rd = r.map(Double.init)
        func loss(_ m: Map) -> Double { zip(m.v, rd).reduce(0) { $0 + $1.0 * $1.1 } }
        let dy = FeatureMap(count: reference.n, height: reference.h, width: reference.w, channels: reference.c, values: r)
        let (dx, dWeight, dBias) = layer.backward(dy, input: x)

        XCTAssertEqual([dx.count, dx.height, dx.width, dx.channels], [n, c.size, c.size, c.inputChannels],
                       "\(c.name): dx shape", file: file, line: line)
        let dxExpected = Self.numericGradient(xd.v) { v in
            var m = xd
            m.v = v
            return loss(Self.layer(c, m, wd, bd))
        }
        var report = "forward \(forwardError)"
        let dxError = Self.assertRelativelyClose(dx.values, dxExpected, tolerance: 1e-4, "\(c.name): dx", file: file, line: line)
        report += ", dx \(dxError)"

        if k > 0 {
            let dwExpected = Self.numericGradient(wd) { loss(Self.layer(c, xd, $0, bd)) }
            XCTAssertNotNil(dWeight, "\(c.name): dWeight", file: file, line: line)
            let dwError = Self.assertRelativelyClose(dWeight ?? [], dwExpected, tolerance: 1e-4, "\(c.name): dWeight", file: file, line: line)
            report += ", dWeight \(dwError)"
        } else {
            XCTAssertNil(dWeight, "\(c.name): dWeight without a kernel", file: file, line: line)
        }
        if let bd {
            let dbExpected = Self.numericGradient(bd) { loss(Self.layer(c, xd, wd, $0)) }
            XCTAssertNotNil(dBias, "\(c.name): dBias", file: file, line: line)
            let dbError = Self.assertRelativelyClose(dBias ?? [], dbExpected, tolerance: 1e-4, "\(c.name): dBias", file: file, line: line)
            report += ", dBias \(dbError)"
        } else {
            XCTAssertNil(dBias, "\(c.name): dBias without a bias", file: file, line: line)
        }
        print("TrainableConv2d \(c.name): \(report)")
    }

    static let tapSets: [[Float]] = [[1, 1], [1, 3, 3, 1]]

    func testPlainConvolutions() {
        check(Case(name: "3×3", kernel: 3, taps: [1, 1], size: 5))
        check(Case(name: "1×1", kernel: 1, taps: [1, 1], size: 5))
        check(Case(name: "1×1 without bias", kernel: 1, taps: [1, 1], size: 4, outputChannels: 5, bias: false))
        check(Case(name: "3×3 without bias", kernel: 3, taps: [1, 1], size: 4, inputChannels: 4, outputChannels: 3, bias: false))
    }

    func testResampleOnly() {
        for taps in Self.tapSets {
            check(Case(name: "kernel 0 down \(taps)", kernel: 0, down: true, taps: taps, size: 6, outputChannels: 3))
            check(Case(name: "kernel 0 up \(taps)", kernel: 0, up: true, taps: taps, size: 3, outputChannels: 3))
        }
    }

    func testUnfusedResampling() {
        for taps in Self.tapSets {
            check(Case(name: "3×3 down \(taps)", kernel: 3, down: true, taps: taps, size: 6))
            check(Case(name: "3×3 up \(taps)", kernel: 3, up: true, taps: taps, size: 3))
            check(Case(name: "1×1 down \(taps)", kernel: 1, down: true, taps: taps, size: 6, outputChannels: 5))
            check(Case(name: "1×1 up \(taps)", kernel: 1, up: true, taps: taps, size: 3, outputChannels: 5))
        }
    }

    func testFusedResampling() {
        for taps in Self.tapSets {
            check(Case(name: "fused 1×1 up \(taps)", kernel: 1, up: true, fused: true, taps: taps, size: 3))
            check(Case(name: "fused 1×1 down \(taps)", kernel: 1, down: true, fused: true, taps: taps, size: 6, outputChannels: 5))
            check(Case(name: "fused 3×3 down \(taps)", kernel: 3, down: true, fused: true, taps: taps, size: 6))
            check(Case(name: "fused 3×3 up \(taps)", kernel: 3, up: true, fused: true, taps: taps, size: 3))
        }
    }

    /// Fused with kernel 0 is plain resampling, as in SamplingConv2d (its fused branches need weights).
    func testFusedWithoutKernelResamples() {
        check(Case(name: "kernel 0 fused down [1, 3, 3, 1]", kernel: 0, down: true, fused: true, taps: [1, 3, 3, 1], size: 6,
                   outputChannels: 3))
        check(Case(name: "kernel 0 fused up [1, 1]", kernel: 0, up: true, fused: true, taps: [1, 1], size: 3, outputChannels: 3))
    }

    /// The relative error rejects an all-zero expectation, a size mismatch and a wrong value.
    func testRelativeErrorCatchesWrongGradients() {
        XCTAssertEqual(Self.relativeError([0, 0], [0, 0]), .infinity)
        XCTAssertEqual(Self.relativeError([1], [1, 2]), .infinity)
        XCTAssertGreaterThan(Self.relativeError([1, 2.001], [1, 2]), 1e-4)
        XCTAssertEqual(Self.relativeError([1, 2], [1, 2]), 0)
    }
}

import CSMNumerics
import XCTest

/// Every backward kernel against float64 central finite differences of a slow float64
/// reference forward, on the scalar loss L = Σ r·y with fixed random r (so dL/dy = r).
final class GradientCheckTests: XCTestCase {
    // MARK: Helpers

    /// Deterministic pseudo-random values in [-1, 1).
    func random(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
    }

    /// dL/dvalues by central differences, L evaluated in float64.
    func numericGradient(_ values: [Float], step: Double = 1e-4, _ loss: ([Double]) -> Double) -> [Double] {
        var x = values.map(Double.init)
        return (0..<x.count).map { i in
            let saved = x[i]
            x[i] = saved + step
            let plus = loss(x)
            x[i] = saved - step
            let minus = loss(x)
            x[i] = saved
            return (plus - minus) / (2 * step)
        }
    }

    /// max |a − b| ≤ tolerance · max(1, max |b|).
    func assertGradient(_ got: [Float], _ expected: [Double], tolerance: Double = 2e-4, _ message: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, message, file: file, line: line)
        let scale = max(1, expected.map { abs($0) }.max() ?? 0)
        var worst = 0.0
        for i in 0..<min(got.count, expected.count) { worst = max(worst, abs(Double(got[i]) - expected[i])) }
        XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(message): worst difference \(worst), scale \(scale)", file: file, line: line)
    }

    func dot(_ r: [Float], _ y: [Double]) -> Double { zip(r, y).reduce(0) { $0 + Double($1.0) * $1.1 } }

    /// Direct convolution on NHWC in float64, PyTorch semantics; weight [Cout, Cin, k, k].
    func referenceConvolution(_ x: [Double], n: Int, h: Int, w: Int, cin: Int, weight: [Double], bias: [Double]?, cout: Int, k: Int,
                              stride: Int, padding: Int) -> [Double] {
        let oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1
        var y = [Double](repeating: 0, count: n * oh * ow * cout)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for co in 0..<cout {
            var sum = bias?[co] ?? 0
            for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                guard iy >= 0 && iy < h && ix >= 0 && ix < w else { continue }
                for ci in 0..<cin { sum += x[((b * h + iy) * w + ix) * cin + ci] * weight[((co * cin + ci) * k + ky) * k + kx] }
            } }
            y[((b * oh + oy) * ow + ox) * cout + co] = sum
        } } } }
        return y
    }

    // MARK: Convolution

    /// oneDNN's direct convolution (training's kernel): forward against the float64 reference,
    /// input, weight and bias gradients against finite differences. Cases cover the stem (one
    /// input channel), ResNet widths (16, 32: the blocked kernels), odd channel counts, the
    /// size-preserving input gradient through the forward kernel (3×3 and 5×5), strides and 1×1.
    func testDirectConvolutionMatchesFiniteDifferences() {
        // (n, cin, cout, kernel, stride, padding, height, width, bias)
        let cases = [(2, 16, 32, 3, 1, 1, 5, 6, false), (2, 1, 16, 3, 1, 1, 6, 6, false), (2, 3, 5, 3, 1, 1, 6, 7, true),
                     (2, 16, 16, 3, 2, 1, 7, 6, false), (2, 16, 32, 1, 2, 0, 7, 5, false), (1, 3, 4, 5, 1, 2, 6, 5, true),
                     (1, 5, 3, 3, 1, 0, 5, 6, true), (1, 3, 4, 7, 2, 3, 9, 9, false), (2, 3, 2, 1, 1, 0, 4, 4, true)]
        for (index, (n, cin, cout, k, stride, padding, h, w, hasBias)) in cases.enumerated() {
            let label = "cin \(cin) cout \(cout) k \(k) stride \(stride) padding \(padding) bias \(hasBias)"
            let seed = UInt64(100 + 10 * index)
            let x = random(n * h * w * cin, seed: seed + 1), weight = random(cout * cin * k * k, seed: seed + 2)
            let bias = hasBias ? random(cout, seed: seed + 3) : nil
            let oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1
            let r = random(n * oh * ow * cout, seed: seed + 4)
            let dy = FeatureMap(count: n, height: oh, width: ow, channels: cout, values: r)
            let xMap = FeatureMap(count: n, height: h, width: w, channels: cin, values: x)
            let convolution = DirectConvolution(inputChannels: cin, outputChannels: cout, kernel: k, stride: stride, padding: padding,
                                                hasBias: hasBias)
            let wd = weight.map(Double.init), xd = x.map(Double.init), bd = bias?.map(Double.init)

            let forward = convolution.forward(xMap, weight: weight, bias: bias)
            XCTAssertEqual([forward.count, forward.height, forward.width, forward.channels], [n, oh, ow, cout], label)
            let reference = referenceConvolution(xd, n: n, h: h, w: w, cin: cin, weight: wd, bias: bd, cout: cout, k: k, stride: stride, padding: padding)
            assertGradient(forward.values, reference, tolerance: 1e-5, "forward \(label)")

            let dx = convolution.inputGradient(dy, weight: weight, height: h, width: w).values
            // The same with the input gradient's filters made once by the caller.
            XCTAssertEqual(convolution.inputGradient(dy, weight: weight, transposedWeight: convolution.transposedFlippedIfUsed(weight),
                                                     height: h, width: w).values, dx, label)
            assertGradient(dx, numericGradient(x) { xs in
                dot(r, referenceConvolution(xs, n: n, h: h, w: w, cin: cin, weight: wd, bias: bd, cout: cout, k: k, stride: stride, padding: padding))
            }, "input gradient \(label)")

            let gradients = convolution.weightGradient(xMap, dy)
            assertGradient(gradients.weight, numericGradient(weight) { ws in
                dot(r, referenceConvolution(xd, n: n, h: h, w: w, cin: cin, weight: ws, bias: bd, cout: cout, k: k, stride: stride, padding: padding))
            }, "weight gradient \(label)")
            XCTAssertEqual(gradients.bias == nil, !hasBias, label)
            if let bias, let db = gradients.bias {
                assertGradient(db, numericGradient(bias) { bs in
                    dot(r, referenceConvolution(xd, n: n, h: h, w: w, cin: cin, weight: wd, bias: bs, cout: cout, k: k, stride: stride, padding: padding))
                }, "bias gradient \(label)")
            }
        }
    }

    /// A chunk's results do not depend on the other chunks: the same images give the same
    /// bits alone or inside a batch of another size, and chunk partials of the weight
    /// gradient sum to the whole batch's.
    func testDirectConvolutionIsPerImage() {
        let n = 6, c = 16, h = 7, w = 7
        let convolution = DirectConvolution(inputChannels: c, outputChannels: c, kernel: 3, padding: 1, hasBias: false)
        let weight = random(c * c * 9, seed: 7)
        let x = FeatureMap(count: n, height: h, width: w, channels: c, values: random(n * h * w * c, seed: 8))
        let dy = FeatureMap(count: n, height: h, width: w, channels: c, values: random(n * h * w * c, seed: 9))
        let whole = convolution.forward(x, weight: weight), first = convolution.forward(x.slice(0..<2), weight: weight)
        XCTAssertEqual(first.values, whole.slice(0..<2).values)
        let wholeGradient = convolution.weightGradient(x, dy).weight
        let parts = [0..<2, 2..<6].map { convolution.weightGradient(x.slice($0), dy.slice($0)).weight }
        assertGradient(BatchChunks.sum(parts), wholeGradient.map(Double.init), tolerance: 1e-5, "chunked weight gradient")
    }

    /// Chunks depend on the batch size alone: 8 up to 128 images (fewer for fewer images),
    /// then as many as keep each at 16 images or fewer; contiguous and covering the batch.
    func testBatchChunksFollowTheBatchSize() {
        for (count, chunks, largest) in [(5, 5, 1), (64, 8, 8), (128, 8, 16), (129, 9, 15), (384, 24, 16), (1000, 63, 16)] {
            let ranges = BatchChunks.ranges(count)
            XCTAssertEqual(ranges.count, chunks, "\(count) images")
            XCTAssertEqual(ranges.map(\.count).max(), largest, "\(count) images")
            XCTAssertEqual(ranges.first?.lowerBound, 0)
            XCTAssertEqual(ranges.last?.upperBound, count)
            XCTAssert(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(count) images")
        }
    }

    // MARK: Batch norm

    /// Training-mode batch norm in float64: y = γ(x − μ)/√(σ²_biased + ε) + β (+ residual) (→ ReLU).
    func referenceBatchNorm(_ x: [Double], channels c: Int, gamma: [Double], beta: [Double], residual: [Double]?, relu: Bool) -> [Double] {
        let rows = x.count / c
        var y = [Double](repeating: 0, count: x.count)
        for ch in 0..<c {
            var mean = 0.0
            for r in 0..<rows { mean += x[r * c + ch] }
            mean /= Double(rows)
            var variance = 0.0
            for r in 0..<rows { variance += (x[r * c + ch] - mean) * (x[r * c + ch] - mean) }
            variance /= Double(rows)
            for r in 0..<rows {
                var v = gamma[ch] * (x[r * c + ch] - mean) / (variance + 1e-5).squareRoot() + beta[ch] + (residual?[r * c + ch] ?? 0)
                if relu { v = max(0, v) }
                y[r * c + ch] = v
            }
        }
        return y
    }

    func testBatchNormTrainingForwardAndBackwardMatchFiniteDifferences() {
        let n = 5, c = 7, h = 3, w = 4
        for (relu, withResidual) in [(false, false), (true, false), (true, true)] {
            let label = "relu \(relu) residual \(withResidual)"
            // An offset mean, so that the variance is not trivially 1/3.
            let x = random(n * h * w * c, seed: 21).enumerated().map { $0.element * 2 + Float($0.offset % c) * 0.3 }
            let gamma = random(c, seed: 22).map { $0 + 1.5 }, beta = random(c, seed: 23)
            let residual = withResidual ? random(x.count, seed: 24) : nil
            let r = random(x.count, seed: 25)
            let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init), rd = residual?.map(Double.init)
            let map = FeatureMap(count: n, height: h, width: w, channels: c, values: x)
            let chunks = BatchChunks.split(map)
            XCTAssertEqual(chunks.count, 5)
            let residualChunks = residual.map { BatchChunks.split(FeatureMap(count: n, height: h, width: w, channels: c, values: $0)) }
            let forward = BatchNorm.trainingForward(chunks, gamma: gamma, beta: beta, residual: residualChunks, relu: relu)
            assertGradient(FeatureMap.joinedChunks(forward.y).values,
                           referenceBatchNorm(xd, channels: c, gamma: gd, beta: bd, residual: rd, relu: relu), tolerance: 1e-5, "forward \(label)")

            // The ReLU (after the residual add, if any) is undone by masking dy with its output.
            let dyChunks = BatchChunks.split(FeatureMap(count: n, height: h, width: w, channels: c, values: r))
            let gradients = BatchNorm.backward(dyChunks, x: chunks, reluOutput: relu ? forward.y : nil, gamma: gamma,
                                               statistics: forward.statistics)
            assertGradient(FeatureMap.joinedChunks(gradients.dx).values, numericGradient(x, step: 1e-5) { xs in
                dot(r, referenceBatchNorm(xs, channels: c, gamma: gd, beta: bd, residual: rd, relu: relu))
            }, "input gradient \(label)")
            assertGradient(gradients.gamma, numericGradient(gamma, step: 1e-5) { gs in
                dot(r, referenceBatchNorm(xd, channels: c, gamma: gs, beta: bd, residual: rd, relu: relu))
            }, "gamma gradient \(label)")
            assertGradient(gradients.beta, numericGradient(beta, step: 1e-5) { bs in
                dot(r, referenceBatchNorm(xd, channels: c, gamma: gd, beta: bs, residual: rd, relu: relu))
            }, "beta gradient \(label)")
        }
    }

    func testBatchNormRunningStatisticsFollowPyTorch() {
        let n = 3, c = 2, pixels = 4
        let x = random(n * pixels * c, seed: 31)
        let chunks = BatchChunks.split(FeatureMap(count: n, height: 2, width: 2, channels: c, values: x))
        let statistics = BatchNorm.batchStatistics(chunks, epsilon: 1e-5)
        var mean: [Float] = [0.5, -1], variance: [Float] = [2, 0.25]
        BatchNorm.updateRunning(mean: &mean, variance: &variance, with: statistics)
        for ch in 0..<c {
            let values = (0..<(n * pixels)).map { Double(x[$0 * c + ch]) }
            let m = values.reduce(0, +) / Double(values.count)
            let unbiased = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)
            XCTAssertEqual(Double(mean[ch]), 0.9 * [0.5, -1][ch] + 0.1 * m, accuracy: 1e-6)
            XCTAssertEqual(Double(variance[ch]), 0.9 * [2, 0.25][ch] + 0.1 * unbiased, accuracy: 1e-6)
            XCTAssertEqual(Double(statistics.variance[ch]), unbiased * Double(values.count - 1) / Double(values.count), accuracy: 1e-6)
        }
    }

    // MARK: Elementwise, pooling, linear

    func testReLUAndResidualGradients() {
        let x = random(60, seed: 41), skip = random(60, seed: 42), r = random(60, seed: 43)
        let map = { (values: [Float]) in FeatureMap(count: 2, height: 2, width: 3, channels: 5, values: values) }
        let y = Residual.add(map(x), map(skip))
        XCTAssertEqual(y.values, zip(x, skip).map { $0 + $1 })
        // dL/d(x + skip) of L = Σ r·ReLU(x + skip) is r masked by the ReLU's output, which the
        // batch-norm backward does in place; the residual hands it to both branches.
        let output = map(y.values.map { max(0, $0) })
        var masked = map(r)
        let statistics = BatchNormStatistics(sums: [Double](repeating: 0, count: 5), squares: [Double](repeating: 1, count: 5),
                                             count: 12, epsilon: 1e-5)
        _ = BatchNorm.maskAndSum(&masked, x: map(x), reluOutput: output, statistics: statistics)
        let reference = { (a: [Double], b: [Double]) in zip(a, b).map { max(0, $0 + $1) } }
        let byX = numericGradient(x, step: 1e-6) { dot(r, reference($0, skip.map(Double.init))) }
        let bySkip = numericGradient(skip, step: 1e-6) { dot(r, reference(x.map(Double.init), $0)) }
        assertGradient(masked.values, byX, "ReLU(x + skip) by x")
        assertGradient(masked.values, bySkip, "ReLU(x + skip) by skip")
    }

    func testGlobalAveragePoolGradient() {
        let n = 3, h = 3, w = 5, c = 4
        let x = random(n * h * w * c, seed: 51), r = random(n * c, seed: 52)
        let reference = { (xs: [Double]) -> [Double] in
            (0..<(n * c)).map { i in (0..<(h * w)).reduce(0.0) { $0 + xs[((i / c) * h * w + $1) * c + i % c] } / Double(h * w) }
        }
        assertGradient(GlobalAveragePool.forward(FeatureMap(count: n, height: h, width: w, channels: c, values: x)),
                       reference(x.map(Double.init)), tolerance: 1e-6, "forward")
        // Backward of images 1..<3 only: rows of a larger gradient, as for one chunk.
        let dx = GlobalAveragePool.backward(r, images: 0..<n, height: h, width: w, channels: c).values
        assertGradient(dx, numericGradient(x) { dot(r, reference($0)) }, "input gradient")
        let tail = GlobalAveragePool.backward(r, images: 1..<3, height: h, width: w, channels: c).values
        XCTAssertEqual(tail, Array(dx[(h * w * c)...]))
    }

    func testMaxPoolForwardAndGradient() {
        let n = 2, c = 3
        for (h, w) in [(7, 6), (4, 5), (1, 2)] {
            let x = random(n * h * w * c, seed: UInt64(60 + h))
            let reference = { (xs: [Double]) -> [Double] in
                let oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1
                var y = [Double]()
                for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
                    var best = -Double.infinity
                    for iy in (2 * oy - 1)...(2 * oy + 1) where iy >= 0 && iy < h {
                        for ix in (2 * ox - 1)...(2 * ox + 1) where ix >= 0 && ix < w { best = max(best, xs[((b * h + iy) * w + ix) * c + ch]) }
                    }
                    y.append(best)
                } } } }
                return y
            }
            let (y, argmax) = MaxPool3x3.forward(FeatureMap(count: n, height: h, width: w, channels: c, values: x))
            assertGradient(y.values, reference(x.map(Double.init)), tolerance: 0, "forward \(h)×\(w)")
            let r = random(y.values.count, seed: 70)
            let dx = MaxPool3x3.backward(FeatureMap(count: n, height: y.height, width: y.width, channels: c, values: r), argmax: argmax,
                                         height: h, width: w).values
            assertGradient(dx, numericGradient(x, step: 1e-6) { dot(r, reference($0)) }, "input gradient \(h)×\(w)")
        }
    }

    func testLinearGradients() {
        let rows = 4, inputs = 5, outputs = 3
        let x = random(rows * inputs, seed: 81), weight = random(outputs * inputs, seed: 82), bias = random(outputs, seed: 83)
        let r = random(rows * outputs, seed: 84)
        let reference = { (xs: [Double], ws: [Double], bs: [Double]) -> [Double] in
            (0..<(rows * outputs)).map { i in
                bs[i % outputs] + (0..<inputs).reduce(0.0) { $0 + xs[(i / outputs) * inputs + $1] * ws[(i % outputs) * inputs + $1] }
            }
        }
        let xd = x.map(Double.init), wd = weight.map(Double.init), bd = bias.map(Double.init)
        assertGradient(LinearWeights(weight: weight, bias: bias, inputs: inputs, outputs: outputs).apply(x, rows: rows),
                       reference(xd, wd, bd), tolerance: 1e-6, "forward")
        assertGradient(LinearGradient.input(r, weight: weight, rows: rows, inputs: inputs, outputs: outputs),
                       numericGradient(x) { dot(r, reference($0, wd, bd)) }, "input gradient")
        assertGradient(LinearGradient.weight(x, r, rows: rows, inputs: inputs, outputs: outputs),
                       numericGradient(weight) { dot(r, reference(xd, $0, bd)) }, "weight gradient")
        assertGradient(LinearGradient.bias(r, rows: rows, outputs: outputs),
                       numericGradient(bias) { dot(r, reference(xd, wd, $0)) }, "bias gradient")
    }
}

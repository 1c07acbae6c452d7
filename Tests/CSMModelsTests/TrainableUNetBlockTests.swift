import CSMModels
import CSMNumerics
import XCTest

/// `TrainableUNetBlock` (EDM's UNetBlock with raw parameters) against a float64 reference of the
/// block written here from its definition, built on `TrainableConv2dTests`' float64
/// convolution reference: the Float forward against the reference, and dL/dx, dL/demb and
/// every parameter gradient against float64 central finite differences of the reference for
/// L = Σ r·y (large tensors on an evenly spread subset of their entries).
final class TrainableUNetBlockTests: XCTestCase {
    typealias Conv = TrainableConv2dTests
    typealias Map = TrainableConv2dTests.Map

    /// One block configuration.
    struct Case {
        var name: String
        var inputChannels = 8
        var outputChannels = 8
        var size = 4
        var down = false
        /// The skip convolution's kernel (1 or 0 for resampling only); nil for no skip.
        var skipKernel: Int?
        var adaptiveScale = false
        var skipScale: Float = 1
        /// 0: no attention.
        var heads = 0
        let embedding = 6
        let epsilon: Float = 1e-5
        let taps: [Float] = [1, 1]
    }

    /// Every tensor the block depends on, by name, in Double.
    typealias Tensors = [String: [Double]]

    static let names = ["norm0.gamma", "norm0.beta", "conv0.weight", "conv0.bias", "affine.weight", "affine.bias",
                        "norm1.gamma", "norm1.beta", "conv1.weight", "conv1.bias", "skip.weight", "skip.bias",
                        "norm2.gamma", "norm2.beta", "qkv.weight", "qkv.bias", "proj.weight", "proj.bias"]

    // MARK: float64 reference

    /// act(GN(x + preBias)·postScale + postShift), biased variance, groups = min(32, C/4).
    static func groupNorm(_ x: Map, _ gamma: [Double], _ beta: [Double], epsilon: Double, preBias: [Double]? = nil,
                          postScale: [Double]? = nil, postShift: [Double]? = nil, silu: Bool) -> Map {
        let groups = min(32, x.c / 4), size = x.c / groups, hw = x.h * x.w
        var y = x
        for i in 0..<x.n {
            for g in 0..<groups {
                var values: [(index: Int, ch: Int, v: Double)] = []
                for px in 0..<hw {
                    for ch in g * size..<(g + 1) * size {
                        let index = (i * hw + px) * x.c + ch
                        values.append((index, ch, x.v[index] + (preBias?[i * x.c + ch] ?? 0)))
                    }
                }
                let mean = values.reduce(0) { $0 + $1.v } / Double(values.count)
                let variance = values.reduce(0) { $0 + ($1.v - mean) * ($1.v - mean) } / Double(values.count)
                for e in values {
                    let k = i * x.c + e.ch
                    var u = ((e.v - mean) / (variance + epsilon).squareRoot() * gamma[e.ch] + beta[e.ch])
                    u = u * (postScale?[k] ?? 1) + (postShift?[k] ?? 0)
                    y.v[e.index] = silu ? u / (1 + exp(-u)) : u
                }
            }
        }
        return y
    }

    /// qkv [n, h, w, 3C] as [q | k | v], heads contiguous blocks: per head softmax(q·kᵀ/√d)·v.
    static func attention(_ qkv: Map, heads: Int) -> Map {
        let c = qkv.c / 3, d = c / heads, hw = qkv.h * qkv.w
        var y = Map(n: qkv.n, h: qkv.h, w: qkv.w, c: c)
        for i in 0..<qkv.n {
            func at(_ px: Int, _ ch: Int) -> Double { qkv.v[(i * hw + px) * qkv.c + ch] }
            for head in 0..<heads {
                for p in 0..<hw {
                    var scores = (0..<hw).map { j in
                        (0..<d).reduce(0.0) { $0 + at(p, head * d + $1) * at(j, c + head * d + $1) } / Double(d).squareRoot()
                    }
                    let top = scores.max()!
                    scores = scores.map { exp($0 - top) }
                    let total = scores.reduce(0, +)
                    for ch in 0..<d {
                        let v = (0..<hw).reduce(0.0) { $0 + scores[$1] / total * at($1, 2 * c + head * d + ch) }
                        y.v[(i * hw + p) * c + head * d + ch] = v
                    }
                }
            }
        }
        return y
    }

    static func convCase(_ c: Case, kernel: Int, inputs: Int, outputs: Int, resample: Bool) -> Conv.Case {
        Conv.Case(name: "", kernel: kernel, down: resample && c.down, taps: c.taps, size: c.size, inputChannels: inputs,
                  outputChannels: outputs, bias: kernel > 0)
    }

    /// The block's forward from its definition.
    static func block(_ c: Case, _ x: Map, _ emb: [Double], _ t: Tensors) -> Map {
        let n = x.n, co = c.outputChannels, e = c.embedding, eps = Double(c.epsilon), s = Double(c.skipScale)
        let outputs = co * (c.adaptiveScale ? 2 : 1)
        let aw = t["affine.weight"]!, ab = t["affine.bias"]!
        let params = (0..<n * outputs).map { k in
            let i = k / outputs, o = k % outputs
            return ab[o] + (0..<e).reduce(0.0) { $0 + aw[o * e + $1] * emb[i * e + $1] }
        }
        var h = groupNorm(x, t["norm0.gamma"]!, t["norm0.beta"]!, epsilon: eps, silu: true)
        h = Conv.layer(convCase(c, kernel: 3, inputs: c.inputChannels, outputs: co, resample: true), h, t["conv0.weight"]!,
                       t["conv0.bias"]!)
        if c.adaptiveScale {
            let scale = (0..<n * co).map { params[($0 / co) * 2 * co + $0 % co] + 1 }
            let shift = (0..<n * co).map { params[($0 / co) * 2 * co + co + $0 % co] }
            h = groupNorm(h, t["norm1.gamma"]!, t["norm1.beta"]!, epsilon: eps, postScale: scale, postShift: shift, silu: true)
        } else {
            h = groupNorm(h, t["norm1.gamma"]!, t["norm1.beta"]!, epsilon: eps, preBias: params, silu: true)
        }
        h = Conv.layer(convCase(c, kernel: 3, inputs: co, outputs: co, resample: false), h, t["conv1.weight"]!, t["conv1.bias"]!)
        var skipped = x
        if let k = c.skipKernel {
            skipped = Conv.layer(convCase(c, kernel: k, inputs: c.inputChannels, outputs: co, resample: true), x,
                                 t["skip.weight"] ?? [], t["skip.bias"])
        }
        for i in h.v.indices { h.v[i] = (h.v[i] + skipped.v[i]) * s }
        if c.heads > 0 {
            let normed = groupNorm(h, t["norm2.gamma"]!, t["norm2.beta"]!, epsilon: eps, silu: false)
            let one = convCase(c, kernel: 1, inputs: co, outputs: 3 * co, resample: false)
            let qkv = Conv.layer(one, normed, t["qkv.weight"]!, t["qkv.bias"]!)
            var projCase = one
            projCase.outputChannels = co
            let projected = Conv.layer(projCase, attention(qkv, heads: c.heads), t["proj.weight"]!, t["proj.bias"]!)
            for i in h.v.indices { h.v[i] = (projected.v[i] + h.v[i]) * s }
        }
        return h
    }

    // MARK: the check

    /// Random parameters for the case (gammas near 1), by name; absent names are not parameters.
    static func tensors(_ c: Case, seed: UInt64) -> [String: [Float]] {
        let ci = c.inputChannels, co = c.outputChannels
        var shapes: [String: Int] = [
            "norm0.gamma": ci, "norm0.beta": ci, "conv0.weight": co * ci * 9, "conv0.bias": co,
            "affine.weight": co * (c.adaptiveScale ? 2 : 1) * c.embedding, "affine.bias": co * (c.adaptiveScale ? 2 : 1),
            "norm1.gamma": co, "norm1.beta": co, "conv1.weight": co * co * 9, "conv1.bias": co,
        ]
        if let k = c.skipKernel, k > 0 {
            shapes["skip.weight"] = co * ci * k * k
            shapes["skip.bias"] = co
        }
        if c.heads > 0 {
            shapes["norm2.gamma"] = co
            shapes["norm2.beta"] = co
            shapes["qkv.weight"] = 3 * co * co
            shapes["qkv.bias"] = 3 * co
            shapes["proj.weight"] = co * co
            shapes["proj.bias"] = co
        }
        var result: [String: [Float]] = [:]
        for (offset, name) in names.enumerated() {
            guard let count = shapes[name] else { continue }
            var values = Conv.random(count, seed: seed &+ UInt64(offset) &+ 10)
            if name.hasSuffix("gamma") { values = values.map { 1 + 0.5 * $0 } }
            if name.hasSuffix("weight") { values = values.map { $0 * 0.5 } }
            result[name] = values
        }
        return result
    }

    static func makeBlock(_ c: Case, _ t: [String: [Float]]) -> TrainableUNetBlock {
        let ci = c.inputChannels, co = c.outputChannels, filter = ResampleFilter(c.taps)
        func norm(_ name: String) -> GroupNormWeights {
            let gamma = t["\(name).gamma"]!
            return GroupNormWeights(gamma: gamma, beta: t["\(name).beta"]!, groups: min(32, gamma.count / 4), epsilon: c.epsilon)
        }
        func conv(_ name: String, inputs: Int, outputs: Int, kernel: Int, resample: Bool = false) -> TrainableConv2d {
            TrainableConv2d(weight: t["\(name).weight"] ?? [], bias: t["\(name).bias"], inputChannels: inputs, outputChannels: outputs,
                            kernel: kernel, down: resample && c.down, filter: filter)
        }
        let attention = c.heads > 0
            ? TrainableUNetBlock.SelfAttention(norm: norm("norm2"), qkv: conv("qkv", inputs: co, outputs: 3 * co, kernel: 1),
                                               proj: conv("proj", inputs: co, outputs: co, kernel: 1), heads: c.heads)
            : nil
        return TrainableUNetBlock(
            norm0: norm("norm0"), conv0: conv("conv0", inputs: ci, outputs: co, kernel: 3, resample: true),
            affine: LinearWeights(weight: t["affine.weight"]!, bias: t["affine.bias"]!, inputs: c.embedding,
                                  outputs: co * (c.adaptiveScale ? 2 : 1)),
            norm1: norm("norm1"), conv1: conv("conv1", inputs: co, outputs: co, kernel: 3),
            skip: c.skipKernel.map { conv("skip", inputs: ci, outputs: co, kernel: $0, resample: true) },
            adaptiveScale: c.adaptiveScale, skipScale: c.skipScale, attention: attention)
    }

    /// At most `limit` evenly spread indices of 0..<count.
    static func subset(_ count: Int, limit: Int = 20) -> [Int] {
        count <= limit ? Array(0..<count) : (0..<limit).map { ($0 * count + count / (2 * limit)) / limit }
    }

    /// Checks the case; returns the largest relative error of each gradient by name.
    @discardableResult
    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) -> [String: Double] {
        let n = 2
        let seed = UInt64(c.name.utf8.reduce(11) { $0 &* 31 &+ Int($1) }.magnitude)
        let x = FeatureMap(count: n, height: c.size, width: c.size, channels: c.inputChannels,
                           values: Conv.random(n * c.size * c.size * c.inputChannels, seed: seed))
        let emb = Conv.random(n * c.embedding, seed: seed &+ 1)
        let t = Self.tensors(c, seed: seed)
        let block = Self.makeBlock(c, t)

        let xd = Map(n: n, h: c.size, w: c.size, c: c.inputChannels, v: x.values.map(Double.init))
        let embd = emb.map(Double.init)
        let td = t.mapValues { $0.map(Double.init) }
        let reference = Self.block(c, xd, embd, td)

        var errors: [String: Double] = [:]
        let y = block.forward(x, emb)
        XCTAssertEqual([y.count, y.height, y.width, y.channels], [reference.n, reference.h, reference.w, reference.c],
                       "\(c.name): output shape", file: file, line: line)
        errors["forward"] = Conv.assertRelativelyClose(y.values, reference.v, tolerance: 1e-5, "\(c.name): forward",
                                                       file: file, line: line)

        let r = Conv.random(reference.v.count, seed: seed &+ 2)
        let rd = r.map(Double.init)
        func loss(_ m: Map) -> Double { zip(m.v, rd).reduce(0) { $0 + $1.0 * $1.1 } }
        let dy = FeatureMap(count: reference.n, height: reference.h, width: reference.w, channels: reference.c, values: r)
        let (dx, dEmb, g) = block.backward(dy, input: x, emb: emb)

        /// Central differences of L at the chosen entries of `values`, against `got` there.
        func compare(_ label: String, _ got: [Float]?, _ values: [Double], _ loss: ([Double]) -> Double) {
            guard let got, got.count == values.count else {
                XCTFail("\(c.name): \(label) is missing or has \(got?.count ?? 0) values, expected \(values.count)", file: file, line: line)
                return
            }
            let indices = Self.subset(values.count)
            var v = values
            let step = 1e-4
            let expected = indices.map { i in
                v[i] = values[i] + step
                let plus = loss(v)
                v[i] = values[i] - step
                let minus = loss(v)
                v[i] = values[i]
                return (plus - minus) / (2 * step)
            }
            errors[label] = Conv.assertRelativelyClose(indices.map { got[$0] }, expected, tolerance: 1e-4, "\(c.name): \(label)",
                                                       file: file, line: line)
        }

        XCTAssertEqual([dx.count, dx.height, dx.width, dx.channels], [n, c.size, c.size, c.inputChannels],
                       "\(c.name): dx shape", file: file, line: line)
        compare("dx", dx.values, xd.v) { v in
            var m = xd
            m.v = v
            return loss(Self.block(c, m, embd, td))
        }
        compare("dEmb", dEmb, embd) { loss(Self.block(c, xd, $0, td)) }

        let got: [String: [Float]?] = [
            "norm0.gamma": g.norm0Gamma, "norm0.beta": g.norm0Beta, "conv0.weight": g.conv0Weight, "conv0.bias": g.conv0Bias,
            "affine.weight": g.affineWeight, "affine.bias": g.affineBias, "norm1.gamma": g.norm1Gamma, "norm1.beta": g.norm1Beta,
            "conv1.weight": g.conv1Weight, "conv1.bias": g.conv1Bias, "skip.weight": g.skipWeight, "skip.bias": g.skipBias,
            "norm2.gamma": g.norm2Gamma, "norm2.beta": g.norm2Beta, "qkv.weight": g.qkvWeight, "qkv.bias": g.qkvBias,
            "proj.weight": g.projWeight, "proj.bias": g.projBias,
        ]
        for name in Self.names {
            if let values = td[name] {
                compare(name, got[name] ?? nil, values) { v in
                    var changed = td
                    changed[name] = v
                    return loss(Self.block(c, xd, embd, changed))
                }
            } else {
                XCTAssertNil(got[name] ?? nil, "\(c.name): \(name) has a gradient but is no parameter", file: file, line: line)
            }
        }
        let report = errors.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.1e", $0.value))" }
        print("TrainableUNetBlock \(c.name): max \(String(format: "%.1e", errors.values.max() ?? 0)); \(report.joined(separator: ", "))")
        return errors
    }

    func testPlainBlock() {
        check(Case(name: "plain"))
        check(Case(name: "plain, skip scale", size: 6, skipScale: Float(0.5.squareRoot())))
    }

    func testChannelChangeWithProjectionSkip() {
        check(Case(name: "4→8, 1×1 skip", inputChannels: 4, skipKernel: 1))
        check(Case(name: "8→4, 1×1 skip, adaptive", outputChannels: 4, skipKernel: 1, adaptiveScale: true, skipScale: 0.7))
    }

    func testDownWithResampleSkip() {
        check(Case(name: "down, resample skip", size: 6, down: true, skipKernel: 0))
        check(Case(name: "down, resample skip, adaptive", size: 6, down: true, skipKernel: 0, adaptiveScale: true, skipScale: 0.7))
        check(Case(name: "down 4→8, 1×1 skip", inputChannels: 4, size: 6, down: true, skipKernel: 1))
    }

    func testAdaptiveScale() {
        check(Case(name: "adaptive", adaptiveScale: true))
    }

    func testAttention() {
        check(Case(name: "attention, 1 head", heads: 1))
        check(Case(name: "attention, 2 heads, adaptive, 4→8", inputChannels: 4, skipKernel: 1, adaptiveScale: true,
                   skipScale: Float(0.5.squareRoot()), heads: 2))
    }
}

import CGaussianKernels
import CSMNumerics
import CSMRandom

/// A k × d Gaussian random projection P with entries N(0, 1/k), never stored: row r of P
/// comes from the Philox-4×32 stream (seed, r) (counter-based, `Philox4x32`), whose block b
/// gives entries 4b … 4b + 3 by a single-precision Box–Muller transform, divided by √k; P is
/// a pure function of (seed, k, d). The transform uses csm's own polynomial log, cos and sin,
/// each within about one float ulp (CGaussianKernels: an AVX-512 kernel where the CPU has
/// AVX-512, else portable C; the two give the same floats bit for bit). `project` generates P
/// in column blocks and multiplies each block into the result as it goes; every output value
/// is computed by the same products in the same order whatever the number of threads.
public struct GaussianProjection: Sendable {
    /// k, the projected dimension.
    public let dimension: Int
    /// d, the input dimension.
    public let inputDimension: Int
    /// The seed of P.
    public let seed: UInt64

    /// Columns of P generated at a time.
    static let blockColumns = 4096
    /// Rows of P per parallel task (a fixed split, so results do not depend on thread count).
    static let panelRows = 128

    public init(dimension: Int, inputDimension: Int, seed: UInt64) {
        precondition(dimension >= 1 && inputDimension >= 1, "GaussianProjection: empty dimensions")
        self.dimension = dimension
        self.inputDimension = inputDimension
        self.seed = seed
    }

    /// Entries P[row, columns], for tests and references.
    public func entries(row: Int, columns: Range<Int>) -> [Float] {
        var out = [Float](repeating: 0, count: columns.count)
        out.withUnsafeMutableBufferPointer { fill($0, row: row, from: columns.lowerBound) }
        return out
    }

    /// Writes P[row, start ..< start + buffer.count] into `buffer`.
    func fill(_ buffer: UnsafeMutableBufferPointer<Float>, row: Int, from start: Int) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        csm_gaussian_fill(seed, UInt64(row), UInt64(start), buffer.count, 1 / Float(dimension).squareRoot(), base)
    }

    /// P·v for each of the `count` rows v of `rows` (count × d, row-major): count × k values.
    public func project(_ rows: [Float], count: Int) -> [Float] {
        precondition(rows.count == count * inputDimension, "GaussianProjection: \(rows.count) values for \(count) rows of \(inputDimension)")
        let k = dimension, d = inputDimension
        var out = [Float](repeating: 0, count: count * k)
        guard count > 0 else { return out }
        let panels = (0..<((k + Self.panelRows - 1) / Self.panelRows)).map { p in (p * Self.panelRows)..<min(k, (p + 1) * Self.panelRows) }
        var block = [Float](repeating: 0, count: k * min(d, Self.blockColumns))
        rows.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                block.withUnsafeMutableBufferPointer { block in
                    var start = 0
                    while start < d {
                        let width = min(Self.blockColumns, d - start)
                        // P[:, start ..< start + width], row-major with leading dimension `width`.
                        Parallel.forEach(panels.count) { p in
                            for r in panels[p] {
                                fill(UnsafeMutableBufferPointer(rebasing: block[(r * width)..<((r + 1) * width)]), row: r, from: start)
                            }
                        }
                        // out[:, panel] += rows[:, block] · P[panel, block]ᵀ
                        Parallel.forEach(panels.count) { p in
                            let panel = panels[p]
                            BLAS.sgemm(transposeB: true, m: count, n: panel.count, k: width,
                                       a: input.baseAddress! + start, lda: d,
                                       b: UnsafePointer(block.baseAddress! + panel.lowerBound * width), ldb: width,
                                       beta: 1, c: output.baseAddress! + panel.lowerBound, ldc: k)
                        }
                        start += width
                    }
                }
            }
        }
        return out
    }
}

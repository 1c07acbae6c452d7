import CSMDiffusion
import CSMNumerics
import Foundation

/// A k × d Gaussian random projection P with entries N(0, 1/k), never stored: entry
/// P[r, j] is value j of `GaussianStream(seed:, stream: r)` divided by √k, so P is a pure
/// function of (seed, k, d). `project` generates P in column blocks and multiplies each
/// block into the result as it goes; every output value is computed by the same products in
/// the same order whatever the number of threads.
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
        let scale = 1 / Float(dimension).squareRoot()
        return GaussianStream(seed: seed, stream: UInt64(row)).values(from: columns.lowerBound, count: columns.count).map { $0 * scale }
    }

    /// P·v for each of the `count` rows v of `rows` (count × d, row-major): count × k values.
    public func project(_ rows: [Float], count: Int) -> [Float] {
        precondition(rows.count == count * inputDimension, "GaussianProjection: \(rows.count) values for \(count) rows of \(inputDimension)")
        let k = dimension, d = inputDimension
        var out = [Float](repeating: 0, count: count * k)
        guard count > 0 else { return out }
        let panels = (0..<((k + Self.panelRows - 1) / Self.panelRows)).map { p in (p * Self.panelRows)..<min(k, (p + 1) * Self.panelRows) }
        let scale = 1 / Float(k).squareRoot()
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
                                let row = UnsafeMutableBufferPointer(rebasing: block[(r * width)..<((r + 1) * width)])
                                GaussianStream(seed: seed, stream: UInt64(r)).fill(row, from: start)
                                for j in row.indices { row[j] *= scale }
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

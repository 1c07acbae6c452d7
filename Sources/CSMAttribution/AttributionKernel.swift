import CSMNumerics
import Foundation

/// The inverse behind DAS scores, computed once for training features Φ (N × k) and a
/// damping λ > 0, in float64:
///
/// - `.features`: (ΦᵀΦ + λI)⁻¹, k × k, used when k ≤ N; score(q, ·) = φ_q (ΦᵀΦ + λI)⁻¹ Φᵀ;
/// - `.gram`: (ΦΦᵀ + λI)⁻¹, N × N, used when k > N (exact gradients of any real network);
///   score(q, ·) = φ_q Φᵀ (ΦΦᵀ + λI)⁻¹.
///
/// The two are the same numbers: (ΦᵀΦ + λI)⁻¹ Φᵀ = Φᵀ (ΦΦᵀ + λI)⁻¹ for every λ > 0 (multiply
/// Φᵀ(ΦΦᵀ + λI) = (ΦᵀΦ + λI)Φᵀ by both inverses), so the smaller matrix is inverted.
/// Scores are then multiplied by the training weights w_i.
public struct AttributionKernel: Sendable {
    /// Which matrix `inverse` inverts.
    public enum Form: String, Sendable, Codable {
        case features, gram
    }

    public let form: Form
    /// λ.
    public let damping: Double
    /// The inverse, size × size, row-major (symmetric).
    public let inverse: [Double]
    /// k for `.features`, N for `.gram`.
    public let size: Int

    /// The kernel's inverse was not defined: the damped matrix is not positive definite.
    public struct NotPositiveDefinite: Error, CustomStringConvertible {
        public let damping: Double
        public var description: String { "the damped kernel is not positive definite with damping \(damping); use a larger --damping" }
    }

    /// A kernel read back from a file.
    public init(form: Form, damping: Double, inverse: [Double], size: Int) {
        precondition(inverse.count == size * size, "AttributionKernel: inverse is not \(size) × \(size)")
        self.form = form
        self.damping = damping
        self.inverse = inverse
        self.size = size
    }

    /// Computes the inverse for `features` (count × dimension, row-major), in `form`
    /// (default: the smaller matrix).
    public init(features: [Float], count: Int, dimension: Int, damping: Double, form: Form? = nil) throws {
        precondition(features.count == count * dimension && count >= 1 && dimension >= 1, "AttributionKernel: features do not match")
        let form = form ?? (dimension <= count ? .features : .gram)
        let size = form == .features ? dimension : count
        var matrix = [Double](repeating: 0, count: size * size)
        if form == .features {
            // ΦᵀΦ: Φ in float64 at once (k ≤ N keeps the k × k result the larger part).
            let phi = Self.doubles(features, rows: count, dimension: dimension, columns: 0..<dimension)
            BLAS.dsyrkUpper(transpose: true, n: size, k: count, a: phi, lda: dimension, c: &matrix, ldc: size)
        } else {
            // ΦΦᵀ = Σ_b Φ_b Φ_bᵀ over column blocks of Φ converted to float64 one at a time.
            for block in Self.columnBlocks(dimension) {
                let part = Self.doubles(features, rows: count, dimension: dimension, columns: block)
                BLAS.dsyrkUpper(transpose: false, n: size, k: block.count, a: part, lda: block.count, beta: 1, c: &matrix, ldc: size)
            }
        }
        for i in 0..<size { matrix[i * size + i] += damping }
        guard BLAS.invertPositiveDefinite(&matrix, n: size) else { throw NotPositiveDefinite(damping: damping) }
        self.init(form: form, damping: damping, inverse: matrix, size: size)
    }

    /// The column blocks of Φ that `.gram` converts to float64 one at a time.
    static func columnBlocks(_ dimension: Int, width: Int = 1 << 16) -> [Range<Int>] {
        stride(from: 0, to: dimension, by: width).map { $0..<min(dimension, $0 + width) }
    }

    /// Columns `columns` of the rows × dimension matrix `values`, as float64 (rows × columns.count).
    static func doubles(_ values: [Float], rows: Int, dimension: Int, columns: Range<Int>) -> [Double] {
        var out = [Double](repeating: 0, count: rows * columns.count)
        for i in 0..<rows {
            for (o, j) in columns.enumerated() { out[i * columns.count + o] = Double(values[i * dimension + j]) }
        }
        return out
    }

    /// score(q, i) = φ_q (ΦᵀΦ + λI)⁻¹ φ_iᵀ · w_i for `queryCount` query features (rows of
    /// `queries`) against the training features the kernel was made from: queryCount × N.
    public func scores(queries: [Float], queryCount: Int, features: [Float], count: Int, dimension: Int, weights: [Float]) -> [Double] {
        precondition(queries.count == queryCount * dimension && features.count == count * dimension && weights.count == count
                         && size == (form == .features ? dimension : count), "AttributionKernel: scores of mismatched features")
        var result = [Double](repeating: 0, count: queryCount * count)
        guard queryCount > 0 else { return result }
        let (q, n) = (queryCount, count)
        switch form {
        case .features:
            let k = dimension
            let queries = Self.doubles(queries, rows: queryCount, dimension: dimension, columns: 0..<dimension)
            let phi = Self.doubles(features, rows: count, dimension: dimension, columns: 0..<dimension)
            var a = [Double](repeating: 0, count: queryCount * dimension)
            BLAS.dgemm(m: q, n: k, k: k, a: queries, lda: k, b: inverse, ldb: k, c: &a, ldc: k)
            BLAS.dgemm(transposeB: true, m: q, n: n, k: k, a: a, lda: k, b: phi, ldb: k, c: &result, ldc: n)
        case .gram:
            var b = [Double](repeating: 0, count: queryCount * count)
            for block in Self.columnBlocks(dimension) {
                let w = block.count
                let qb = Self.doubles(queries, rows: queryCount, dimension: dimension, columns: block)
                let pb = Self.doubles(features, rows: count, dimension: dimension, columns: block)
                BLAS.dgemm(transposeB: true, m: q, n: n, k: w, a: qb, lda: w, b: pb, ldb: w, beta: 1, c: &b, ldc: n)
            }
            BLAS.dgemm(m: q, n: n, k: n, a: b, lda: n, b: inverse, ldb: n, c: &result, ldc: n)
        }
        for r in 0..<queryCount {
            for i in 0..<count { result[r * count + i] *= Double(weights[i]) }
        }
        return result
    }
}

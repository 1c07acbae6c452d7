/// The two orders of an attention layer's qkv rows (the 1×1 qkv convolution's output
/// channels, with their biases): EDM's, as stored, and csm's, as `Attention` reads them.
/// The sampling and trainable blocks both hold csm's order.
enum QKVOrder {
    /// EDM's qkv rows, ordered (head, channel, {q,k,v}) — row 3·i + j for channel i = head·(C/heads) + c —
    /// to csm's [q | k | v]: row j·C + i. The same for any head count.
    static func regroup(_ w: [Float], _ b: [Float], channels c: Int) -> ([Float], [Float]) {
        var wq = [Float](repeating: 0, count: w.count), bq = [Float](repeating: 0, count: b.count)
        for i in 0..<c {
            for j in 0..<3 {
                bq[j * c + i] = b[i * 3 + j]
                for ci in 0..<c { wq[(j * c + i) * c + ci] = w[(i * 3 + j) * c + ci] }
            }
        }
        return (wq, bq)
    }

    /// The inverse of `regroup`: csm's [q | k | v] rows → EDM's (head, channel, {q,k,v}).
    static func ungroup(_ wq: [Float], _ bq: [Float], channels c: Int) -> ([Float], [Float]) {
        var w = [Float](repeating: 0, count: wq.count), b = [Float](repeating: 0, count: bq.count)
        for i in 0..<c {
            for j in 0..<3 {
                b[i * 3 + j] = bq[j * c + i]
                for ci in 0..<c { w[(i * 3 + j) * c + ci] = wq[(j * c + i) * c + ci] }
            }
        }
        return (w, b)
    }
}

/// y = a + b (a residual connection). Its backward hands dy to both branches unchanged;
/// where both branches come from one tensor, their input gradients are added with `add`.
public enum Residual {
    /// a + b, elementwise.
    public static func add(_ a: FeatureMap, _ b: FeatureMap) -> FeatureMap {
        kernelPrecondition(a.values.count == b.values.count && a.channels == b.channels, "residual: shapes disagree")
        var y = FeatureMap(uninitializedCount: a.count, height: a.height, width: a.width, channels: a.channels)
        y.values.withUnsafeMutableBufferPointer { yb in
            a.values.withUnsafeBufferPointer { ab in
                b.values.withUnsafeBufferPointer { bb in
                    let yp = yb.baseAddress!, ap = ab.baseAddress!, bp = bb.baseAddress!
                    for i in 0..<yb.count { yp[i] = ap[i] + bp[i] }
                }
            }
        }
        return y
    }
}

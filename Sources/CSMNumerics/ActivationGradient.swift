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

    /// a + (y > 0 ? dy : 0) in one pass: where a ReLU with output y follows the residual add,
    /// the gradient reaching the identity branch (dy masked by the ReLU, PyTorch's choice of 0
    /// at 0) joins the other branch's input gradient `a`.
    public static func add(_ a: FeatureMap, reluGradient dy: FeatureMap, output y: FeatureMap) -> FeatureMap {
        kernelPrecondition(a.values.count == dy.values.count && dy.values.count == y.values.count && a.channels == dy.channels,
                           "residual: shapes disagree")
        var out = FeatureMap(uninitializedCount: a.count, height: a.height, width: a.width, channels: a.channels)
        out.values.withUnsafeMutableBufferPointer { ob in
            a.values.withUnsafeBufferPointer { ab in
                dy.values.withUnsafeBufferPointer { gb in
                    y.values.withUnsafeBufferPointer { yb in
                        let op = ob.baseAddress!, ap = ab.baseAddress!, gp = gb.baseAddress!, yp = yb.baseAddress!
                        for i in 0..<ob.count { op[i] = ap[i] + (yp[i] > 0 ? gp[i] : 0) }
                    }
                }
            }
        }
        return out
    }
}

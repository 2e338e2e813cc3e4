/// Sums in Double over Float buffers, with four independent accumulators: a single running sum waits on the
/// previous addition at every element, four let the additions overlap (measured: BatchNorm statistics and
/// DSG's per-sample statistics are reductions like these over every activation).
public enum Reductions {
    /// `Σ x[i]`.
    @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var (a, b, c, d) = (0.0, 0.0, 0.0, 0.0)
        var i = 0
        while i + 4 <= count {
            a += Double(x[i])
            b += Double(x[i + 1])
            c += Double(x[i + 2])
            d += Double(x[i + 3])
            i += 4
        }
        while i < count {
            a += Double(x[i])
            i += 1
        }
        return (a + b) + (c + d)
    }

    /// `Σ (x[i] − mean)²`.
    @inline(__always)
    public static func squaredDeviations(_ x: UnsafePointer<Float>, count: Int, mean: Double) -> Double {
        var (a, b, c, d) = (0.0, 0.0, 0.0, 0.0)
        var i = 0
        while i + 4 <= count {
            let (p, q, r, s) = (
                Double(x[i]) - mean, Double(x[i + 1]) - mean, Double(x[i + 2]) - mean, Double(x[i + 3]) - mean
            )
            a += p * p
            b += q * q
            c += r * r
            d += s * s
            i += 4
        }
        while i < count {
            let p = Double(x[i]) - mean
            a += p * p
            i += 1
        }
        return (a + b) + (c + d)
    }
}

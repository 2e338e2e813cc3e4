import DSGCore

/// The image priors of the official DSG code (Docs/DSG.md §5), on a batch `[N, C, H, W]` rolled by the same
/// jitter `(r, r)` in height and width (circularly). Each returns its value and adds `gradientScale * dL/dx` for the
/// *unrolled* images into `gradient`.
public enum ImagePriors {
    /// Neighbour pairs of total variation, (dy, dx, first row, first column): pixels (y, x) and (y + dy, x + dx)
    /// with both inside the image.
    private static let directions = [(0, 1, 0, 0), (1, 0, 0, 0), (-1, 1, 1, 0), (1, 1, 0, 0)]

    /// Total variation as the sum of four un-squared L2 norms over the whole batch: horizontal, vertical and
    /// both diagonal neighbour differences.
    ///
    /// A rolled row is its source row rotated, so each row's source is computed once and the columns run in
    /// contiguous stretches between the wrap points (a modulo per pixel cost 6% of a ResNet-18 224x224 iteration).
    /// Each direction's sum, and each gradient element's additions, run in the same order as pixel by pixel
    /// over the rolled batch; nothing is allocated.
    public static func totalVariation(
        _ x: UnsafeBufferPointer<Float>, shape: Shape, jitter r: Int, gradient: UnsafeMutableBufferPointer<Float>?,
        gradientScale: Float
    ) -> Double {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let x = x.baseAddress!
        var squares = SIMD4<Double>()
        for p in 0..<planes {
            for (k, (dy, dx, y0, _)) in directions.enumerated() {
                var sum = squares[k]
                forEachRun(plane: p, h, w, r, dy, dx, y0) { a, b, count in
                    let (xa, xb) = (x + a, x + b)
                    for i in 0..<count {
                        let d = Double(xa[i]) - Double(xb[i])
                        sum += d * d
                    }
                }
                squares[k] = sum
            }
        }
        let norms = squares.squareRoot()
        if let gradient = gradient?.baseAddress {
            for p in 0..<planes {
                for (k, (dy, dx, y0, _)) in directions.enumerated() where norms[k] > 0 {
                    let f = Double(gradientScale) / norms[k]
                    forEachRun(plane: p, h, w, r, dy, dx, y0) { a, b, count in
                        let (xa, xb, ga, gb) = (x + a, x + b, gradient + a, gradient + b)
                        for i in 0..<count {
                            let g = Float(f * (Double(xa[i]) - Double(xb[i])))
                            ga[i] += g
                            gb[i] -= g
                        }
                    }
                }
            }
        }
        return norms.sum()
    }

    /// The mean over samples of each sample's L2 norm (rolling does not change it).
    public static func l2(
        _ x: UnsafeBufferPointer<Float>, batch n: Int, gradient: UnsafeMutableBufferPointer<Float>?,
        gradientScale: Float
    ) -> Double {
        let d = x.count / n
        var total = 0.0
        for i in 0..<n {
            var s = 0.0
            for k in 0..<d { s += Double(x[i * d + k]) * Double(x[i * d + k]) }
            let norm = s.squareRoot()
            total += norm
            if let gradient, norm > 0 {
                let f = Double(gradientScale) / (norm * Double(n))
                for k in 0..<d { gradient[i * d + k] += Float(f * Double(x[i * d + k])) }
            }
        }
        return total / Double(n)
    }

    /// Calls `body(a, b, count)` for the neighbour pairs (y, x) and (y + dy, x + dx) of plane `plane` of the
    /// rolled batch, rows from `y0`, in row order, as runs of `count` pairs at buffer indices `a + i` and `b + i`:
    /// rolled pixel (y, x) is original pixel ((y − r) mod h, (x − r) mod w), so along a row both indices advance
    /// by one except where either wraps, and each row is at most three runs.
    @inline(__always)
    private static func forEachRun(
        plane: Int, _ h: Int, _ w: Int, _ r: Int, _ dy: Int, _ dx: Int, _ y0: Int, _ body: (Int, Int, Int) -> Void
    ) {
        func sourceRow(_ y: Int) -> Int { (plane * h + ((y - r) % h + h) % h) * w }
        let firstColumn = ((-r) % w + w) % w
        for y in y0..<(y0 + h - abs(dy)) {
            let (rowA, rowB) = (sourceRow(y), sourceRow(y + dy))
            var x = 0
            while x < w - dx {
                let a = (firstColumn + x) % w, b = (firstColumn + x + dx) % w
                let run = min(w - dx - x, w - a, w - b)
                body(rowA + a, rowB + b, run)
                x += run
            }
        }
    }
}

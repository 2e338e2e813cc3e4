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
    public static func totalVariation(
        _ x: UnsafeBufferPointer<Float>, shape: Shape, jitter r: Int, gradient: UnsafeMutableBufferPointer<Float>?,
        gradientScale: Float
    ) -> Double {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        var total = 0.0
        for (dy, dx, y0, x0) in directions {
            let rows = (h - abs(dy)), cols = (w - dx)
            var squares = 0.0
            forEachPair(n * c, h, w, dy, dx, y0, x0, rows, cols, r) { a, b in
                let d = Double(x[a]) - Double(x[b])
                squares += d * d
            }
            let norm = squares.squareRoot()
            total += norm
            guard let gradient, norm > 0 else { continue }
            let f = Double(gradientScale) / norm
            forEachPair(n * c, h, w, dy, dx, y0, x0, rows, cols, r) { a, b in
                let g = Float(f * (Double(x[a]) - Double(x[b])))
                gradient[a] += g
                gradient[b] -= g
            }
        }
        return total
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

    /// Calls `body(indexA, indexB)` with unrolled buffer indices for every neighbour pair of the rolled images:
    /// rolled pixel (y, x) is original pixel ((y − r) mod H, (x − r) mod W).
    @inline(__always)
    private static func forEachPair(
        _ planes: Int, _ h: Int, _ w: Int, _ dy: Int, _ dx: Int, _ y0: Int, _ x0: Int, _ rows: Int, _ cols: Int,
        _ r: Int,
        _ body: (Int, Int) -> Void
    ) {
        func source(_ y: Int, _ x: Int) -> Int { (((y - r) % h + h) % h) * w + (((x - r) % w + w) % w) }
        for p in 0..<planes {
            let base = p * h * w
            for y in y0..<(y0 + rows) {
                for x in x0..<(x0 + cols) { body(base + source(y, x), base + source(y + dy, x + dx)) }
            }
        }
    }
}

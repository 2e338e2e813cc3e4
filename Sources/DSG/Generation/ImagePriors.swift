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
    /// Each plane is rolled into a scratch plane first, so neighbours sit at fixed offsets and the loops do no
    /// index arithmetic per pixel (the modulo per pixel cost 6% of a ResNet-18 224x224 iteration). The sums and
    /// the gradient additions happen in the same order as over the rolled batch directly.
    public static func totalVariation(
        _ x: UnsafeBufferPointer<Float>, shape: Shape, jitter r: Int, gradient: UnsafeMutableBufferPointer<Float>?,
        gradientScale: Float
    ) -> Double {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * h * w) { scratch in
            let rolled = scratch.baseAddress!, rolledGradient = rolled + h * w
            var squares = [Double](repeating: 0, count: directions.count)
            for p in 0..<planes {
                roll(x.baseAddress! + p * h * w, into: rolled, h, w, r)
                for (k, (dy, dx, y0, _)) in directions.enumerated() {
                    let offset = dy * w + dx
                    for y in y0..<(y0 + h - abs(dy)) {
                        for i in (y * w)..<(y * w + w - dx) {
                            let d = Double(rolled[i]) - Double(rolled[i + offset])
                            squares[k] += d * d
                        }
                    }
                }
            }
            let norms = squares.map { $0.squareRoot() }
            if let gradient {
                for p in 0..<planes {
                    let plane = gradient.baseAddress! + p * h * w
                    roll(x.baseAddress! + p * h * w, into: rolled, h, w, r)
                    roll(plane, into: rolledGradient, h, w, r)
                    for (k, (dy, dx, y0, _)) in directions.enumerated() where norms[k] > 0 {
                        let f = Double(gradientScale) / norms[k], offset = dy * w + dx
                        for y in y0..<(y0 + h - abs(dy)) {
                            for i in (y * w)..<(y * w + w - dx) {
                                let g = Float(f * (Double(rolled[i]) - Double(rolled[i + offset])))
                                rolledGradient[i] += g
                                rolledGradient[i + offset] -= g
                            }
                        }
                    }
                    unroll(rolledGradient, into: plane, h, w, r)
                }
            }
            return norms.reduce(0, +)
        }
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

    /// Rolled pixel (y, x) of an `h x w` plane is original pixel ((y − r) mod h, (x − r) mod w).
    private static func roll(
        _ plane: UnsafePointer<Float>, into rolled: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, _ r: Int
    ) {
        let shift = ((r % w) + w) % w
        for y in 0..<h {
            let source = plane + (((y - r) % h + h) % h) * w, row = rolled + y * w
            (row + shift).update(from: source, count: w - shift)
            row.update(from: source + w - shift, count: shift)
        }
    }

    /// The inverse of ``roll(_:into:_:_:_:)``: writes the rolled plane back to its original positions.
    private static func unroll(
        _ rolled: UnsafePointer<Float>, into plane: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, _ r: Int
    ) {
        let shift = ((r % w) + w) % w
        for y in 0..<h {
            let target = plane + (((y - r) % h + h) % h) * w, row = rolled + y * w
            target.update(from: row + shift, count: w - shift)
            (target + w - shift).update(from: row, count: shift)
        }
    }
}

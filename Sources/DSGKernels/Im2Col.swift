/// Lowering of one sample's `[C, H, W]` image to the `[C * KH * KW, OH * OW]` patch matrix and back.
///
/// Row `(c * KH + i) * KW + j` of the matrix holds, for every output position, the input pixel under kernel
/// tap `(i, j)` of channel `c` (zero where the tap falls in the padding). Channels stay contiguous blocks of
/// rows, so a group's rows are one slice and grouped convolution needs no reshuffling.
///
/// Small planes make per-line copies expensive, so common cases are lowered a whole row at a time:
/// - stride 1 with the output as wide as the input: each row is the channel plane shifted by the tap offset;
/// - a strided 1x1 kernel without padding: each row is one channel, subsampled;
/// - stride 2 on even sizes with the output half as large: the image is first split into its four phases
///   (even/odd rows x even/odd columns), after which each row is one phase plane shifted, as above.
/// Everything else goes line by line.
public enum Im2Col {
    /// How a geometry is lowered.
    enum Path {
        case shifted  // stride 1, output width = input width
        case subsample  // 1x1 kernel, no padding, stride > 1: every row is a strided view of one channel
        case phases  // stride 2, even input, output = input / 2
        case lines
    }

    static func path(_ g: ConvGeometry) -> Path {
        if g.strideH == 1 && g.strideW == 1 && g.outputW == g.inputW { return .shifted }
        if g.kernelH == 1 && g.kernelW == 1 && g.padH == 0 && g.padW == 0 { return .subsample }
        if g.strideH == 2 && g.strideW == 2 && g.dilationH == 1 && g.dilationW == 1
            && g.inputH % 2 == 0 && g.inputW % 2 == 0 && g.outputH == g.inputH / 2 && g.outputW == g.inputW / 2
        {
            return .phases
        }
        return .lines
    }

    /// Floats of scratch ``lower(_:_:into:scratch:)`` and ``accumulate(_:_:into:scratch:)`` need besides the
    /// patch matrix: room for the phase-split image where that path is taken.
    public static func scratchCount(_ g: ConvGeometry) -> Int {
        path(g) == .phases ? g.inChannels * g.inputPlane : 0
    }

    /// Fills `columns` (`[C * KH * KW, OH * OW]`) from `image` (`[C, H, W]`).
    public static func lower(
        _ image: UnsafePointer<Float>, _ g: ConvGeometry, into columns: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        switch path(g) {
        case .shifted:
            forEachTap(g, columns) { c, i, j, row in
                copyShifted(
                    image + c * g.inputPlane, height: g.inputH, width: g.inputW, outputHeight: g.outputH,
                    dy: i * g.dilationH - g.padH, dx: j * g.dilationW - g.padW, into: row)
            }
        case .phases:
            splitPhases(image, g, into: scratch)
            let (ph, pw) = (g.inputH / 2, g.inputW / 2)
            forEachTap(g, columns) { c, i, j, row in
                let (a, dy) = phase(i - g.padH), (b, dx) = phase(j - g.padW)
                copyShifted(
                    scratch + (c * 4 + a * 2 + b) * ph * pw, height: ph, width: pw, outputHeight: ph,
                    dy: dy, dx: dx, into: row)
            }
        case .subsample:
            for c in 0..<g.inChannels {
                let src = image + c * g.inputPlane, row = columns + c * g.outputPlane
                for y in 0..<g.outputH {
                    let s = src + y * g.strideH * g.inputW, d = row + y * g.outputW
                    for x in 0..<g.outputW { d[x] = s[x * g.strideW] }
                }
            }
        case .lines:
            lowerByLines(image, g, into: columns)
        }
    }

    /// Adds the patch matrix `columns` back onto `image` (`+=`): the adjoint of ``lower(_:_:into:scratch:)``.
    ///
    /// `columns` is consumed: the entries that belong to padding are set to zero on the way.
    public static func accumulate(
        _ columns: UnsafeMutablePointer<Float>, _ g: ConvGeometry, into image: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        switch path(g) {
        case .shifted:
            forEachTap(g, columns) { c, i, j, row in
                addShifted(
                    row, outputHeight: g.outputH, into: image + c * g.inputPlane, height: g.inputH, width: g.inputW,
                    dy: i * g.dilationH - g.padH, dx: j * g.dilationW - g.padW)
            }
        case .phases:
            let (ph, pw) = (g.inputH / 2, g.inputW / 2)
            for c in 0..<g.inChannels {
                for a in 0..<2 {
                    for b in 0..<2 where readsPhase(a, b, g) {
                        (scratch + (c * 4 + a * 2 + b) * ph * pw).update(repeating: 0, count: ph * pw)
                    }
                }
            }
            forEachTap(g, columns) { c, i, j, row in
                let (a, dy) = phase(i - g.padH), (b, dx) = phase(j - g.padW)
                addShifted(
                    row, outputHeight: ph, into: scratch + (c * 4 + a * 2 + b) * ph * pw, height: ph, width: pw,
                    dy: dy, dx: dx)
            }
            mergePhases(scratch, g, into: image)
        case .subsample:
            for c in 0..<g.inChannels {
                let dst = image + c * g.inputPlane, row = columns + c * g.outputPlane
                for y in 0..<g.outputH {
                    let d = dst + y * g.strideH * g.inputW, s = row + y * g.outputW
                    for x in 0..<g.outputW { d[x * g.strideW] += s[x] }
                }
            }
        case .lines:
            accumulateByLines(columns, g, into: image)
        }
    }

    // MARK: - Whole-row paths

    /// Calls `body(channel, i, j, matrixRow)` for every row of the patch matrix, in order.
    @inline(__always)
    private static func forEachTap(
        _ g: ConvGeometry, _ columns: UnsafeMutablePointer<Float>,
        _ body: (Int, Int, Int, UnsafeMutablePointer<Float>) -> Void
    ) {
        var row = columns
        for c in 0..<g.inChannels {
            for i in 0..<g.kernelH {
                for j in 0..<g.kernelW {
                    body(c, i, j, row)
                    row += g.outputPlane
                }
            }
        }
    }

    /// `row[y * W + x] = plane[(y + dy) * W + x + dx]` for `y < outputHeight`, `x < W`, zero where that
    /// falls outside the `height x W` plane. The inside rows are one contiguous block shifted by `dx`.
    @inline(__always)
    private static func copyShifted(
        _ plane: UnsafePointer<Float>, height: Int, width w: Int, outputHeight oh: Int, dy: Int, dx: Int,
        into row: UnsafeMutablePointer<Float>
    ) {
        let (y0, y1) = inside(dy, count: oh, size: height)
        let (x0, x1) = inside(dx, count: w, size: w)
        if y0 > 0 { row.update(repeating: 0, count: y0 * w) }
        if y1 < oh { (row + y1 * w).update(repeating: 0, count: (oh - y1) * w) }
        guard y1 > y0 else { return }
        // The block may start or end up to |dx| elements outside the plane; those elements land in edge
        // columns, which are zeroed below, so the copy is clamped to the plane.
        let start = (y0 + dy) * w + dx, count = (y1 - y0) * w
        let lo = max(0, -start), hi = min(count, height * w - start)
        if lo < hi { (row + y0 * w + lo).update(from: plane + start + lo, count: hi - lo) }
        zeroEdgeColumns(row, rows: y0..<y1, width: w, inside: x0..<x1)
    }

    /// The adjoint of ``copyShifted``: `plane[(y + dy) * W + x + dx] += row[y * W + x]` where inside.
    /// Zeroes the edge columns of `row` first so the inside rows can be added as one block.
    @inline(__always)
    private static func addShifted(
        _ row: UnsafeMutablePointer<Float>, outputHeight oh: Int, into plane: UnsafeMutablePointer<Float>,
        height: Int, width w: Int, dy: Int, dx: Int
    ) {
        let (y0, y1) = inside(dy, count: oh, size: height)
        let (x0, x1) = inside(dx, count: w, size: w)
        guard y1 > y0 else { return }
        zeroEdgeColumns(row, rows: y0..<y1, width: w, inside: x0..<x1)
        let start = (y0 + dy) * w + dx, count = (y1 - y0) * w
        let lo = max(0, -start), hi = min(count, height * w - start)
        let src = row + y0 * w, dst = plane + start
        if lo < hi { for k in lo..<hi { dst[k] += src[k] } }
    }

    /// Zeroes columns outside `inside` in the given rows of a `width`-wide matrix row.
    @inline(__always)
    private static func zeroEdgeColumns(
        _ row: UnsafeMutablePointer<Float>, rows: Range<Int>, width w: Int, inside: Range<Int>
    ) {
        // Usually one column or none: a loop over rows with a fixed column beats an inner loop per row.
        for x in 0..<inside.lowerBound { for y in rows { row[y * w + x] = 0 } }
        for x in inside.upperBound..<w { for y in rows { row[y * w + x] = 0 } }
    }

    /// Output indices `first..<end` (of `count`) with `0 <= index + shift < size`.
    @inline(__always)
    private static func inside(_ shift: Int, count: Int, size: Int) -> (Int, Int) {
        let first = min(max(0, -shift), count)
        let end = max(first, min(count, size - shift))
        return (first, end)
    }

    /// Whether some kernel tap reads row phase `a` and column phase `b` (a 1x1 kernel reads only phase 0, 0).
    @inline(__always)
    private static func readsPhase(_ a: Int, _ b: Int, _ g: ConvGeometry) -> Bool {
        var rows = false, columns = false
        for i in 0..<g.kernelH where phase(i - g.padH).0 == a { rows = true }
        for j in 0..<g.kernelW where phase(j - g.padW).0 == b { columns = true }
        return rows && columns
    }

    /// `phases[c][a][b][y][x] = image[c][2y + a][2x + b]`, for the phases some tap reads.
    private static func splitPhases(
        _ image: UnsafePointer<Float>, _ g: ConvGeometry, into phases: UnsafeMutablePointer<Float>
    ) {
        let (ph, pw, w) = (g.inputH / 2, g.inputW / 2, g.inputW)
        for c in 0..<g.inChannels {
            let src = image + c * g.inputPlane, dst = phases + c * g.inputPlane
            for a in 0..<2 {
                for b in 0..<2 where readsPhase(a, b, g) {
                    let p = dst + (a * 2 + b) * ph * pw
                    for y in 0..<ph {
                        let s = src + (2 * y + a) * w + b, d = p + y * pw
                        for x in 0..<pw { d[x] = s[2 * x] }
                    }
                }
            }
        }
    }

    /// `image[c][2y + a][2x + b] += phases[c][a][b][y][x]`: the adjoint of ``splitPhases``.
    private static func mergePhases(
        _ phases: UnsafePointer<Float>, _ g: ConvGeometry, into image: UnsafeMutablePointer<Float>
    ) {
        let (ph, pw, w) = (g.inputH / 2, g.inputW / 2, g.inputW)
        for c in 0..<g.inChannels {
            let src = phases + c * g.inputPlane, dst = image + c * g.inputPlane
            for a in 0..<2 {
                for b in 0..<2 where readsPhase(a, b, g) {
                    let p = src + (a * 2 + b) * ph * pw
                    for y in 0..<ph {
                        let d = dst + (2 * y + a) * w + b, s = p + y * pw
                        for x in 0..<pw { d[2 * x] += s[x] }
                    }
                }
            }
        }
    }

    // MARK: - Line-by-line path

    private static func lowerByLines(
        _ image: UnsafePointer<Float>, _ g: ConvGeometry, into columns: UnsafeMutablePointer<Float>
    ) {
        let (ow, sw, w) = (g.outputW, g.strideW, g.inputW)
        forEachTap(g, columns) { c, i, j, row in
            let (y0, y1) = lineRange(i * g.dilationH - g.padH, stride: g.strideH, count: g.outputH, size: g.inputH)
            let dx = j * g.dilationW - g.padW
            let (x0, x1) = lineRange(dx, stride: sw, count: ow, size: w)
            row.update(repeating: 0, count: g.outputPlane)
            for y in y0..<y1 {
                let src = image + c * g.inputPlane + (y * g.strideH + i * g.dilationH - g.padH) * w + dx
                let dst = row + y * ow
                for x in x0..<x1 { dst[x] = src[x * sw] }
            }
        }
    }

    private static func accumulateByLines(
        _ columns: UnsafeMutablePointer<Float>, _ g: ConvGeometry, into image: UnsafeMutablePointer<Float>
    ) {
        let (ow, sw, w) = (g.outputW, g.strideW, g.inputW)
        forEachTap(g, columns) { c, i, j, row in
            let (y0, y1) = lineRange(i * g.dilationH - g.padH, stride: g.strideH, count: g.outputH, size: g.inputH)
            let dx = j * g.dilationW - g.padW
            let (x0, x1) = lineRange(dx, stride: sw, count: ow, size: w)
            for y in y0..<y1 {
                let dst = image + c * g.inputPlane + (y * g.strideH + i * g.dilationH - g.padH) * w + dx
                let src = row + y * ow
                for x in x0..<x1 { dst[x * sw] += src[x] }
            }
        }
    }

    /// Output indices `first..<end` (of `count`) with `0 <= index * stride + shift < size`.
    @inline(__always)
    private static func lineRange(_ shift: Int, stride: Int, count: Int, size: Int) -> (Int, Int) {
        let first = shift >= 0 ? 0 : min((-shift + stride - 1) / stride, count)
        let last = size - 1 - shift  // the largest reachable index * stride
        let end = last < 0 ? first : min(last / stride + 1, count)
        return (first, max(first, end))
    }

    /// Tap offset `d` at stride 2 reads phase `d mod 2` shifted by `floor(d / 2)`.
    @inline(__always)
    private static func phase(_ d: Int) -> (Int, Int) {
        let p = ((d % 2) + 2) % 2
        return (p, (d - p) / 2)
    }
}

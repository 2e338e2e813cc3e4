/// Lowering of one sample's `[C, H, W]` image to the `[C * KH * KW, OH * OW]` patch matrix and back.
///
/// Row `(c * KH + i) * KW + j` of the matrix holds, for every output position, the input pixel under kernel
/// tap `(i, j)` of channel `c` (zero where the tap falls in the padding). Channels stay contiguous blocks of
/// rows, so a group's rows are one slice and grouped convolution needs no reshuffling.
public enum Im2Col {
    /// Fills `columns` (`[C * KH * KW, OH * OW]`) from `image` (`[C, H, W]`).
    public static func lower(
        _ image: UnsafePointer<Float>, _ g: ConvGeometry, into columns: UnsafeMutablePointer<Float>
    ) {
        forEachTapRow(g) { channel, row, y, inputRow, validX in
            let dst = columns + row * g.outputPlane + y * g.outputW
            guard let inputRow, !validX.isEmpty else {
                dst.update(repeating: 0, count: g.outputW)
                return
            }
            let src = image + channel * g.inputPlane + inputRow * g.inputW
            let offset = (validX.lowerBound * g.strideW) + tapOffsetW(row, g)
            if validX.lowerBound > 0 { dst.update(repeating: 0, count: validX.lowerBound) }
            if g.strideW == 1 {
                (dst + validX.lowerBound).update(from: src + offset, count: validX.count)
            } else {
                var s = src + offset
                for x in validX {
                    dst[x] = s.pointee
                    s += g.strideW
                }
            }
            if validX.upperBound < g.outputW {
                (dst + validX.upperBound).update(repeating: 0, count: g.outputW - validX.upperBound)
            }
        }
    }

    /// Adds the patch matrix `columns` back onto `image` (`+=`): the adjoint of ``lower(_:_:into:)``.
    public static func accumulate(
        _ columns: UnsafePointer<Float>, _ g: ConvGeometry, into image: UnsafeMutablePointer<Float>
    ) {
        forEachTapRow(g) { channel, row, y, inputRow, validX in
            guard let inputRow, !validX.isEmpty else { return }
            let src = columns + row * g.outputPlane + y * g.outputW
            var d = image + channel * g.inputPlane + inputRow * g.inputW
                + validX.lowerBound * g.strideW + tapOffsetW(row, g)
            for x in validX {
                d.pointee += src[x]
                d += g.strideW
            }
        }
    }

    /// Horizontal input offset of the kernel tap that owns `row`: `j * dilationW - padW`.
    @inline(__always)
    private static func tapOffsetW(_ row: Int, _ g: ConvGeometry) -> Int {
        (row % g.kernelW) * g.dilationW - g.padW
    }

    /// Calls `body(channel, row, outputY, inputRow, validOutputX)` for every matrix row and output line;
    /// `inputRow` is nil where the tap reads padding, `validOutputX` the output columns that read real pixels.
    @inline(__always)
    private static func forEachTapRow(
        _ g: ConvGeometry, _ body: (Int, Int, Int, Int?, Range<Int>) -> Void
    ) {
        var row = 0
        for channel in 0..<g.inChannels {
            for i in 0..<g.kernelH {
                let offH = i * g.dilationH - g.padH
                for j in 0..<g.kernelW {
                    let offW = j * g.dilationW - g.padW
                    // Output columns x with 0 <= x * strideW + offW < W.
                    let first = offW >= 0 ? 0 : (-offW + g.strideW - 1) / g.strideW
                    let last = min(g.outputW - 1, (g.inputW - 1 - offW) >= 0 ? (g.inputW - 1 - offW) / g.strideW : -1)
                    let validX = first <= last ? first..<(last + 1) : 0..<0
                    for y in 0..<g.outputH {
                        let ih = y * g.strideH + offH
                        body(channel, row, y, (ih >= 0 && ih < g.inputH) ? ih : nil, validX)
                    }
                    row += 1
                }
            }
        }
    }
}

internal import CDSGKernels

/// Max and average pooling over NCHW buffers. `Pooling.Window` reuses ``ConvGeometry`` for the sliding window
/// (channels in = out, groups = channels), so output sizes follow the same rule as convolution.
public enum Pooling {
    /// Max pooling; writes `argmax` (index into the input plane) for the backward pass. Padding never wins.
    /// Planes are split over the cores.
    public static func maxForward(
        _ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    ) {
        Parallel.forEachChunk(
            of: batch * g.inChannels, MaxPoolJob(geometry: g, input: input, output: output, argmax: argmax))
    }

    /// Max pooling over the planes (sample, channel) `planes`, each by the vectorised C kernel.
    fileprivate static func maxForward(
        _ g: ConvGeometry, planes: Range<Int>, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    ) {
        for plane in planes {
            dsg_max_pool_plane(
                input + plane * g.inputPlane, g.inputH, g.inputW, output + plane * g.outputPlane,
                argmax + plane * g.outputPlane, g.outputH, g.outputW, g.kernelH, g.kernelW, g.strideH, g.strideW,
                g.padH, g.padW, g.dilationH, g.dilationW)
        }
    }

    /// `inputGrad += scatter(outputGrad)` to the saved argmax positions.
    public static func maxBackward(
        _ g: ConvGeometry, batch: Int, outputGrad: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
        inputGrad: UnsafeMutablePointer<Float>
    ) {
        for nc in 0..<(batch * g.inChannels) {
            let inPlane = inputGrad + nc * g.inputPlane, o = nc * g.outputPlane
            for i in 0..<g.outputPlane { inPlane[Int(argmax[o + i])] += outputGrad[o + i] }
        }
    }

    /// Average pooling, dividing by the full window including padding (PyTorch's `count_include_pad=True`).
    public static func averageForward(
        _ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        let scale = 1 / Float(g.kernelH * g.kernelW)
        forEachWindow(g, planes: 0..<(batch * g.inChannels)) { plane, outIndex, ys, xs in
            var sum: Float = 0
            for y in ys { for x in xs { sum += input[plane + y * g.inputW + x] } }
            output[outIndex] = sum * scale
        }
    }

    /// `inputGrad += dL/dx` for average pooling.
    public static func averageBackward(
        _ g: ConvGeometry, batch: Int, outputGrad: UnsafePointer<Float>, inputGrad: UnsafeMutablePointer<Float>
    ) {
        let scale = 1 / Float(g.kernelH * g.kernelW)
        forEachWindow(g, planes: 0..<(batch * g.inChannels)) { plane, outIndex, ys, xs in
            let d = outputGrad[outIndex] * scale
            for y in ys { for x in xs { inputGrad[plane + y * g.inputW + x] += d } }
        }
    }

    /// Calls `body(inputPlaneOffset, outputIndex, rows, columns)` with the in-bounds part of every window of
    /// the planes (sample, channel) `planes`.
    @inline(__always)
    private static func forEachWindow(
        _ g: ConvGeometry, planes: Range<Int>, _ body: (Int, Int, StrideTo<Int>, StrideTo<Int>) -> Void
    ) {
        for nc in planes {
            let plane = nc * g.inputPlane
            for oy in 0..<g.outputH {
                let y0 = oy * g.strideH - g.padH
                let ys = stride(
                    from: y0 + firstInside(y0, g.dilationH), to: min(y0 + g.kernelH * g.dilationH, g.inputH + 0),
                    by: g.dilationH)
                for ox in 0..<g.outputW {
                    let x0 = ox * g.strideW - g.padW
                    let xs = stride(
                        from: x0 + firstInside(x0, g.dilationW), to: min(x0 + g.kernelW * g.dilationW, g.inputW),
                        by: g.dilationW)
                    body(plane, nc * g.outputPlane + oy * g.outputW + ox, ys, xs)
                }
            }
        }
    }

    /// The smallest multiple of `dilation` that moves `start` to a non-negative position.
    @inline(__always)
    private static func firstInside(_ start: Int, _ dilation: Int) -> Int {
        start >= 0 ? 0 : ((-start + dilation - 1) / dilation) * dilation
    }
}

private struct MaxPoolJob: ChunkJob {
    let geometry: ConvGeometry
    let input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>

    func run(samples planes: Range<Int>, chunk: Int) {
        Pooling.maxForward(geometry, planes: planes, input: input, output: output, argmax: argmax)
    }
}

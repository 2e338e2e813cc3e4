/// Depthwise 2-D convolution (one input and one output channel per group, as MobileNetV2's and
/// EfficientNet's 3x3 and 5x5 layers) by direct loops over each channel's plane.
///
/// Lowered to im2col + GEMM, a depthwise layer becomes one GEMM of a single row per channel and sample: OpenBLAS's
/// per-call overhead and the patch matrix's writes dominate its few multiply-adds. Here each kernel tap is one pass
/// along an output row, `row[ox] += w * input[ox * stride + offset]`, over the output columns whose input
/// column is inside the image (padding is never materialised); with stride 1 the pass is contiguous and runs in
/// explicit vectors (`Vector.swift`). The work is split over the cores by channel, so the passes write disjoint
/// planes and the weight gradient needs no per-core copies: no workspace at all.
///
/// Sums run in a different order than the GEMM's, so results differ from the grouped GEMM by float rounding
/// only (checked against direct Double loops in the tests, as the GEMM path is).
enum DepthwiseConv2D {
    /// Whether `g` is depthwise in the sense this kernel handles: more than one group, each with one input and
    /// one output channel.
    static func handles(_ g: ConvGeometry) -> Bool {
        g.groups > 1 && g.groupInChannels == 1 && g.groupOutChannels == 1
    }

    static func forward(
        _ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>
    ) {
        Parallel.forEachChunk(
            of: g.inChannels,
            DepthwiseJob(
                g: g, batch: batch, pass: .forward, input: input, weight: weight, bias: bias,
                output: UnsafeMutablePointer(mutating: output), gradient: nil))
    }

    /// `inputGrad += conv_transpose(outputGrad, weight)`.
    static func backwardData(
        _ g: ConvGeometry, batch: Int, outputGrad: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        inputGrad: UnsafeMutablePointer<Float>
    ) {
        Parallel.forEachChunk(
            of: g.inChannels,
            DepthwiseJob(
                g: g, batch: batch, pass: .backwardData, input: outputGrad, weight: weight, bias: nil,
                output: inputGrad, gradient: nil))
    }

    /// `weightGrad += dL/dW` and, when given, `biasGrad += dL/db`.
    static func backwardWeight(
        _ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>,
        weightGrad: UnsafeMutablePointer<Float>, biasGrad: UnsafeMutablePointer<Float>?
    ) {
        Parallel.forEachChunk(
            of: g.inChannels,
            DepthwiseJob(
                g: g, batch: batch, pass: .backwardWeight, input: input, weight: outputGrad, bias: nil,
                output: weightGrad, gradient: biasGrad))
    }
}

/// The output columns `lo ..< hi` whose input column `ox * stride + offset` lies in `0 ..< width`.
@inline(__always)
private func validColumns(offset: Int, stride: Int, width: Int, outputs: Int) -> (lo: Int, hi: Int) {
    let lo = offset >= 0 ? 0 : (stride - 1 - offset) / stride
    let hi = offset > width - 1 ? 0 : min(outputs, (width - 1 - offset) / stride + 1)
    return (lo, max(lo, hi))
}

private struct DepthwiseJob: ChunkJob {
    enum Pass { case forward, backwardData, backwardWeight }
    let g: ConvGeometry, batch: Int, pass: Pass
    /// Forward: input, weight, bias, output. Backward-data: `input` is the output gradient, `output` the input
    /// gradient. Backward-weight: `input` is the input, `weight` the output gradient, `output` the weight gradient
    /// and `gradient` the bias gradient.
    let input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    let output: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>?

    func run(samples channels: Range<Int>, chunk: Int) {
        let (inPlane, outPlane, taps) = (g.inputPlane, g.outputPlane, g.kernelH * g.kernelW)
        for c in channels {
            for n in 0..<batch {
                let plane = n * g.inChannels + c
                switch pass {
                case .forward:
                    forwardPlane(
                        input + plane * inPlane, weight + c * taps, bias?[c] ?? 0, output + plane * outPlane)
                case .backwardData:
                    backwardDataPlane(input + plane * outPlane, weight + c * taps, output + plane * inPlane)
                case .backwardWeight:
                    let dy = weight + plane * outPlane
                    backwardWeightPlane(input + plane * inPlane, dy, output + c * taps)
                    if let gradient {
                        var s: Float = 0
                        for i in 0..<outPlane { s += dy[i] }
                        gradient[c] += s
                    }
                }
            }
        }
    }

    /// Calls `body(output, input, count, tap)` for every output row and every kernel tap whose input row lies
    /// inside the image: the `count` output elements from offset `output` of the plane that the tap reaches read
    /// the input elements from offset `input`, one every `strideW`. Offsets rather than row and column indices,
    /// so the passes below index their pointers directly (an index sum inside the loop kept its overflow check
    /// and left the loop scalar).
    @inline(__always)
    private func forEachTap(_ body: (_ output: Int, _ input: Int, _ count: Int, _ tap: Int) -> Void) {
        for oy in 0..<g.outputH {
            for i in 0..<g.kernelH {
                let iy = oy * g.strideH - g.padH + i * g.dilationH
                guard iy >= 0, iy < g.inputH else { continue }
                for j in 0..<g.kernelW {
                    let offset = j * g.dilationW - g.padW
                    let (lo, hi) = validColumns(offset: offset, stride: g.strideW, width: g.inputW, outputs: g.outputW)
                    guard hi > lo else { continue }
                    body(oy * g.outputW + lo, iy * g.inputW + lo * g.strideW + offset, hi - lo, i * g.kernelW + j)
                }
            }
        }
    }

    private func forwardPlane(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: Float, _ y: UnsafeMutablePointer<Float>
    ) {
        y.update(repeating: b, count: g.outputPlane)
        let s = g.strideW
        forEachTap { output, input, count, tap in
            let (out, source, wv) = (y + output, x + input, w[tap])
            if s == 1 {
                let wvs = Vector(repeating: wv)
                forEachVector(0..<count) { k in
                    storeVector(loadVector(out + k) + wvs * loadVector(source + k), out + k)
                } scalar: { k in
                    out[k] += wv * source[k]
                }
            } else {
                for k in 0..<count { out[k] += wv * source[k &* s] }
            }
        }
    }

    private func backwardDataPlane(
        _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>
    ) {
        let s = g.strideW
        forEachTap { output, input, count, tap in
            let (row, target, wv) = (dy + output, dx + input, w[tap])
            if s == 1 {
                let wvs = Vector(repeating: wv)
                forEachVector(0..<count) { k in
                    storeVector(loadVector(target + k) + wvs * loadVector(row + k), target + k)
                } scalar: { k in
                    target[k] += wv * row[k]
                }
            } else {
                for k in 0..<count { target[k &* s] += wv * row[k] }
            }
        }
    }

    private func backwardWeightPlane(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>
    ) {
        let s = g.strideW
        forEachTap { output, input, count, tap in
            let (row, source) = (dy + output, x + input)
            var sum: Float = 0
            if s == 1 {
                // Eight partial sums, added up at the end.
                var partial = Vector()
                forEachVector(0..<count) { k in
                    partial += loadVector(row + k) * loadVector(source + k)
                } scalar: { k in
                    sum += row[k] * source[k]
                }
                sum += partial.sum()
            } else {
                for k in 0..<count { sum += row[k] * source[k &* s] }
            }
            dw[tap] += sum
        }
    }
}

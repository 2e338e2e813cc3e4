import DSGKernels
import DSGTestSupport
import Testing

/// im2col + GEMM convolution against a direct seven-loop convolution in Double, forward and both backwards,
/// over geometries PyTorch's fixtures do not cover (non-square kernels, unequal strides, padding and dilation).
@Suite("Convolution kernels against direct loops")
struct Conv2DTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let c: Int, o: Int, h: Int, w: Int, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)
        let dilation: (Int, Int), groups: Int
        var testDescription: String {
            "c\(c) o\(o) \(h)x\(w) k\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups)"
        }
    }

    static let cases: [Case] = [
        Case(c: 3, o: 4, h: 7, w: 6, kernel: (3, 2), stride: (2, 1), padding: (1, 0), dilation: (1, 1), groups: 1),
        Case(c: 4, o: 6, h: 9, w: 8, kernel: (3, 3), stride: (1, 3), padding: (2, 1), dilation: (2, 1), groups: 2),
        Case(c: 6, o: 6, h: 5, w: 5, kernel: (3, 3), stride: (2, 2), padding: (1, 1), dilation: (1, 1), groups: 6),
        Case(c: 2, o: 3, h: 4, w: 4, kernel: (1, 1), stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1),
        Case(c: 2, o: 2, h: 3, w: 3, kernel: (3, 3), stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1),
        // Output width equal to the input width: the block-copy path of im2col, with and without row stride.
        Case(c: 3, o: 2, h: 7, w: 5, kernel: (3, 3), stride: (2, 1), padding: (1, 1), dilation: (1, 1), groups: 1),
        Case(c: 2, o: 3, h: 6, w: 6, kernel: (5, 3), stride: (1, 1), padding: (2, 1), dilation: (1, 1), groups: 1),
        // Stride 1, same size, 8 or more input channels: backward-data as the transposed convolution.
        Case(c: 8, o: 5, h: 6, w: 5, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 1),
        Case(c: 9, o: 4, h: 7, w: 7, kernel: (3, 5), stride: (1, 1), padding: (2, 4), dilation: (2, 2), groups: 1),
        // Stride 2 on even sizes with half-size output: the phase-split path.
        Case(c: 3, o: 4, h: 8, w: 6, kernel: (3, 3), stride: (2, 2), padding: (1, 1), dilation: (1, 1), groups: 1),
        Case(c: 2, o: 3, h: 6, w: 4, kernel: (1, 1), stride: (2, 2), padding: (0, 0), dilation: (1, 1), groups: 1),
        Case(c: 2, o: 2, h: 8, w: 8, kernel: (7, 7), stride: (2, 2), padding: (3, 3), dilation: (1, 1), groups: 2),
        // Depthwise (one channel per group), with every kind of border, and a depthwise multiplier.
        Case(c: 5, o: 5, h: 7, w: 9, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 5),
        Case(c: 3, o: 3, h: 9, w: 8, kernel: (5, 3), stride: (2, 1), padding: (2, 1), dilation: (1, 1), groups: 3),
        Case(c: 4, o: 4, h: 6, w: 7, kernel: (3, 3), stride: (1, 2), padding: (0, 0), dilation: (1, 1), groups: 4),
        Case(c: 2, o: 2, h: 8, w: 8, kernel: (3, 3), stride: (1, 1), padding: (2, 2), dilation: (2, 2), groups: 2),
        Case(c: 3, o: 3, h: 4, w: 5, kernel: (3, 3), stride: (3, 3), padding: (4, 3), dilation: (1, 1), groups: 3),
        Case(c: 3, o: 3, h: 5, w: 21, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 3),
        Case(c: 3, o: 6, h: 6, w: 6, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 3),
        // Depthwise on rows wide enough for the direct kernel's eight-column vectors, stride 1 and 2, with a
        // remainder; 5x5 as in EfficientNet.
        Case(c: 4, o: 4, h: 6, w: 21, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 4),
        Case(c: 3, o: 3, h: 9, w: 40, kernel: (5, 5), stride: (2, 2), padding: (2, 2), dilation: (1, 1), groups: 3),
        Case(c: 2, o: 2, h: 5, w: 33, kernel: (3, 3), stride: (2, 2), padding: (1, 1), dilation: (1, 1), groups: 2),
        Case(c: 2, o: 2, h: 7, w: 30, kernel: (5, 5), stride: (1, 1), padding: (2, 2), dilation: (1, 1), groups: 2),
        // 3x3 stride 1 with 8 or more channels each way and 32 or more 2x2 output tiles: Winograd, with whole and
        // partial tiles; same size (backward-data through Winograd too), shrinking and growing.
        Case(c: 8, o: 9, h: 13, w: 11, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 1),
        Case(c: 10, o: 8, h: 12, w: 16, kernel: (3, 3), stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 1),
        Case(c: 8, o: 8, h: 14, w: 13, kernel: (3, 3), stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1),
        Case(c: 9, o: 8, h: 10, w: 12, kernel: (3, 3), stride: (1, 1), padding: (2, 1), dilation: (1, 1), groups: 1),
    ]

    @Test(arguments: cases)
    func matchesDirectConvolution(_ t: Case) throws {
        let g = try ConvGeometry(
            inChannels: t.c, outChannels: t.o, kernel: t.kernel, stride: t.stride, padding: t.padding,
            dilation: t.dilation, groups: t.groups, input: (t.h, t.w))
        let n = 3  // odd, so the per-core chunks differ in size
        let x = (0..<(n * t.c * t.h * t.w)).map { Float(($0 * 7919) % 23) / 11 - 1 }
        let wt = (0..<g.weightCount).map { Float(($0 * 104_729) % 17) / 8 - 1 }
        let bias = (0..<t.o).map { Float($0) * 0.25 - 0.5 }
        let outCount = n * t.o * g.outputPlane
        let dy = (0..<outCount).map { Float(($0 * 31) % 19) / 9 - 1 }
        var workspace = [Float](repeating: 0, count: max(Conv2D.workspaceCount(g, batch: n), 1))

        var y = [Float](repeating: 0, count: outCount)
        Conv2D.forward(g, batch: n, input: x, weight: wt, bias: bias, output: &y, workspace: &workspace)
        var dx = [Float](repeating: 1, count: x.count)  // starts at 1: backward must accumulate
        Conv2D.backwardData(g, batch: n, outputGrad: dy, weight: wt, inputGrad: &dx, workspace: &workspace)
        var dw = [Float](repeating: 0, count: wt.count), db = [Float](repeating: 0, count: t.o)
        Conv2D.backwardWeight(
            g, batch: n, input: x, outputGrad: dy, weightGrad: &dw, biasGrad: &db, workspace: &workspace)

        // Direct loops: every (output, tap) pair, accumulating all three results at once.
        var ry = [Double](repeating: 0, count: outCount), rdx = [Double](repeating: 1, count: x.count)
        var rdw = [Double](repeating: 0, count: wt.count), rdb = [Double](repeating: 0, count: t.o)
        let cg = t.c / t.groups, og = t.o / t.groups
        for b in 0..<n {
            for o in 0..<t.o {
                for oy in 0..<g.outputH {
                    for ox in 0..<g.outputW {
                        let yi = ((b * t.o + o) * g.outputH + oy) * g.outputW + ox
                        ry[yi] += Double(bias[o])
                        rdb[o] += Double(dy[yi])
                        for ci in 0..<cg {
                            let c = (o / og) * cg + ci
                            for i in 0..<t.kernel.0 {
                                for j in 0..<t.kernel.1 {
                                    let iy = oy * t.stride.0 - t.padding.0 + i * t.dilation.0
                                    let ix = ox * t.stride.1 - t.padding.1 + j * t.dilation.1
                                    guard iy >= 0, iy < t.h, ix >= 0, ix < t.w else { continue }
                                    let xi = ((b * t.c + c) * t.h + iy) * t.w + ix
                                    let wi = ((o * cg + ci) * t.kernel.0 + i) * t.kernel.1 + j
                                    ry[yi] += Double(x[xi]) * Double(wt[wi])
                                    rdx[xi] += Double(dy[yi]) * Double(wt[wi])
                                    rdw[wi] += Double(dy[yi]) * Double(x[xi])
                                }
                            }
                        }
                    }
                }
            }
        }
        expectClose(y, ry, rtol: 0, atol: 1e-4, "forward")
        expectClose(dx, rdx, rtol: 0, atol: 1e-4, "backward data")
        expectClose(dw, rdw, rtol: 0, atol: 1e-4, "backward weight")
        expectClose(db, rdb, rtol: 0, atol: 1e-4, "bias gradient")
    }

    /// The Winograd cases above really take that path (forward, and backward-data where the convolution keeps
    /// its size), and the 7x7 planes of deep layers do not.
    @Test func winogradTakesTheCasesMeantForIt() throws {
        for t in Self.cases.suffix(4) {
            let g = try ConvGeometry(
                inChannels: t.c, outChannels: t.o, kernel: t.kernel, padding: t.padding, input: (t.h, t.w))
            #expect(Winograd.applies(to: g, enabled: true), "\(t.testDescription)")
        }
        let deep = try ConvGeometry(inChannels: 512, outChannels: 512, kernel: (3, 3), padding: (1, 1), input: (7, 7))
        #expect(!Winograd.applies(to: deep, enabled: true))
    }

    /// Winograd's rounding error at a realistic layer (32 channels each way, 16x16, uniform inputs and PyTorch's
    /// default weight scale): the largest difference from exact sums, relative to the output's RMS, must stay
    /// within that of plain float sums in tap order. Measured 2026-12-06: Winograd 1.1e-6, im2col through
    /// OpenBLAS (`DSG_CONVOLUTION=im2col`) 2.0e-6, plain float sums 2.3e-6: Winograd's GEMMs sum over 32 channels where
    /// im2col's sum over 288 taps.
    @Test func winogradErrorIsBounded() throws {
        let g = try ConvGeometry(inChannels: 32, outChannels: 32, kernel: (3, 3), padding: (1, 1), input: (16, 16))
        #expect(Winograd.applies(to: g, enabled: true))
        var state: UInt64 = 12_345
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) * 2 - 1
        }
        let n = 2, bound = 1 / Float(g.groupPatchSize).squareRoot()
        let x = (0..<(n * g.inChannels * g.inputPlane)).map { _ in uniform() * 1.7 }
        let wt = (0..<g.weightCount).map { _ in uniform() * bound }
        var workspace = [Float](repeating: 0, count: Conv2D.workspaceCount(g, batch: n))
        var y = [Float](repeating: 0, count: n * g.outChannels * g.outputPlane)
        Conv2D.forward(g, batch: n, input: x, weight: wt, bias: nil, output: &y, workspace: &workspace)
        var worst = 0.0, floatWorst = 0.0, squares = 0.0
        for b in 0..<n {
            for o in 0..<g.outChannels {
                for oy in 0..<g.outputH {
                    for ox in 0..<g.outputW {
                        var sum = 0.0
                        var floatSum: Float = 0
                        for c in 0..<g.inChannels {
                            for i in 0..<3 {
                                for j in 0..<3 {
                                    let iy = oy - 1 + i, ix = ox - 1 + j
                                    guard iy >= 0, iy < g.inputH, ix >= 0, ix < g.inputW else { continue }
                                    let xv = x[((b * g.inChannels + c) * g.inputH + iy) * g.inputW + ix]
                                    let wv = wt[((o * g.inChannels + c) * 3 + i) * 3 + j]
                                    sum += Double(xv) * Double(wv)
                                    floatSum += xv * wv
                                }
                            }
                        }
                        let index = ((b * g.outChannels + o) * g.outputH + oy) * g.outputW + ox
                        squares += sum * sum
                        worst = max(worst, abs(Double(y[index]) - sum))
                        floatWorst = max(floatWorst, abs(Double(floatSum) - sum))
                    }
                }
            }
        }
        let rms = (squares / Double(y.count)).squareRoot()
        #expect(worst / rms < 3e-6 && worst <= floatWorst, "Winograd \(worst / rms), float sums \(floatWorst / rms)")
    }

    @Test func impossibleGeometryThrows() {
        #expect(throws: ConvGeometryError.nonPositive("stride")) {
            try ConvGeometry(inChannels: 1, outChannels: 1, kernel: (3, 3), stride: (0, 1), input: (5, 5))
        }
        #expect(throws: ConvGeometryError.kernelLargerThanInput(kernelH: 5, kernelW: 5, paddedH: 4, paddedW: 4)) {
            try ConvGeometry(inChannels: 1, outChannels: 1, kernel: (3, 3), dilation: (2, 2), input: (4, 4))
        }
        #expect(throws: ConvGeometryError.groupsDoNotDivide(groups: 2, inChannels: 3, outChannels: 4)) {
            try ConvGeometry(inChannels: 3, outChannels: 4, kernel: (1, 1), groups: 2, input: (4, 4))
        }
        let ok = try? ConvGeometry(inChannels: 1, outChannels: 1, kernel: (3, 3), padding: (1, 1), input: (2, 2))
        #expect(ok?.outputH == 2)
    }
}

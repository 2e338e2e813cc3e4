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

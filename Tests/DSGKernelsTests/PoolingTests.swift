import DSGKernels
import Testing

/// Max pooling's vectorised kernel against the definition, on planes wide enough for its eight-column path,
/// with ties (equal values: the first keeps the index) and NaN (it wins, and a later NaN wins over an earlier).
@Suite("Max pooling against its definition")
struct PoolingTests {
    @Test(arguments: [
        // (kernel, stride, padding, dilation, input height, input width)
        (3, 2, 1, 1, 20, 37), (2, 2, 0, 1, 9, 40), (3, 1, 1, 1, 6, 29), (3, 1, 0, 2, 11, 30), (5, 3, 2, 1, 13, 50),
    ])
    func matchesTheDefinition(_ c: (Int, Int, Int, Int, Int, Int)) throws {
        let (k, s, p, d, h, w) = c
        let g = try ConvGeometry(
            inChannels: 3, outChannels: 3, kernel: (k, k), stride: (s, s), padding: (p, p), dilation: (d, d),
            groups: 3, input: (h, w))
        let batch = 2, planes = batch * 3
        // Few distinct values, so windows hold ties; a sprinkling of NaN.
        var x = (0..<(planes * g.inputPlane)).map { Float(($0 * 7919) % 13) - 6 }
        for i in stride(from: 5, to: x.count, by: 97) { x[i] = .nan }
        var y = [Float](repeating: 0, count: planes * g.outputPlane)
        var argmax = [Int32](repeating: 0, count: y.count)
        Pooling.maxForward(g, batch: batch, input: x, output: &y, argmax: &argmax)
        for plane in 0..<planes {
            for oy in 0..<g.outputH {
                for ox in 0..<g.outputW {
                    var best = -Float.infinity, index = -1
                    for i in 0..<k {
                        for j in 0..<k {
                            let iy = oy * s - p + i * d, ix = ox * s - p + j * d
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            let v = x[plane * g.inputPlane + iy * w + ix]
                            if index < 0 || v > best || v.isNaN { (best, index) = (v, iy * w + ix) }
                        }
                    }
                    let o = plane * g.outputPlane + oy * g.outputW + ox
                    #expect(argmax[o] == Int32(index), "plane \(plane) (\(oy), \(ox))")
                    #expect(y[o] == best || (y[o].isNaN && best.isNaN), "plane \(plane) (\(oy), \(ox))")
                }
            }
        }
    }
}

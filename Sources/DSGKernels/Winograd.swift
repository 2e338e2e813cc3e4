internal import CDSGKernels

/// 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
/// Convolutional Neural Networks", 2016): each 2x2 block of outputs comes from a 4x4 block of inputs with 16
/// multiplications per channel pair instead of 36. Over a whole layer that is 16 GEMMs, one per position of
/// the 4x4 transformed tile, `[O, C] x [C, tiles]`, 2.25 times fewer multiply-adds than im2col's one GEMM.
///
/// With `V = Bᵀ d B` for a 4x4 input tile `d`, `U = G g Gᵀ` for a 3x3 kernel `g` and `Y = Aᵀ (Σ_c U ⊙ V) A`:
///
///     Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 -1 -1]
///
/// The transforms only add, subtract and halve, so the result differs from the direct sum by rounding alone:
/// `Conv2DTests.winogradErrorIsBounded` bounds it against exact sums, next to plain float sums'.
///
/// Each sample's tiles are transformed in blocks of whole tile rows (``blockRows(_:)``); the transforms are C
/// (`CDSGKernels`), the GEMMs OpenBLAS's. Samples are split over the cores.
public enum Winograd {
    /// Whether `g` is a convolution this path computes: 3x3, stride 1, no dilation, one group, at least 8 input
    /// and output channels and 32 tiles per sample. With fewer, the GEMMs are too thin to gain: ResNet-18's
    /// 512-channel layers on 7x7 planes (16 tiles) ran at 79% of their im2col rate, its 14x14 ones at 133%
    /// (dsg-bench).
    public static func applies(to g: ConvGeometry, enabled: Bool = Conv2D.usesFastPaths) -> Bool {
        enabled && g.kernelH == 3 && g.kernelW == 3 && g.strideH == 1 && g.strideW == 1 && g.dilationH == 1
            && g.dilationW == 1 && g.groups == 1 && g.inChannels >= 8 && g.outChannels >= 8
            && tiles(g).down * tiles(g).across >= 32
    }

    /// Tile rows transformed together, all of one sample: enough for at least 256 tiles, whose
    /// `16 x (C + O)` floats each stay in cache between the passes when channels are few (with many channels
    /// the GEMMs' `U_ξ` dominate, and every block reads them all again, so blocks stay large). Blocks never
    /// mix samples: every sample's tiles then sit in the same GEMM columns, so a sample's result does not
    /// depend on the batch it is in.
    static func blockRows(_ g: ConvGeometry) -> Int {
        let (down, across) = tiles(g)
        return min(down, max(1, max(256, 16_384 / (g.inChannels + g.outChannels)) / across))
    }

    /// Whether each `U_ξ` is stored as `[C, O]` and multiplied transposed: for GEMMs small enough for OpenBLAS's
    /// small-matrix path, as in ``Conv2D/forwardTransposesWeights(_:)``.
    static func transposesWeights(_ g: ConvGeometry) -> Bool {
        g.outChannels * g.inChannels * blockRows(g) * tiles(g).across <= 1_000_000
    }

    /// Tiles per sample, down and across.
    static func tiles(_ g: ConvGeometry) -> (down: Int, across: Int) { ((g.outputH + 1) / 2, (g.outputW + 1) / 2) }

    /// The row stride of a block's transformed matrices: its tiles, and room for the last row's vector to
    /// run over.
    static func blockStride(_ g: ConvGeometry) -> Int { blockRows(g) * tiles(g).across + Vector.scalarCount }

    /// Tiles across rounded up to whole vectors: the padded input rows hold `2 * paddedAcross + 16` floats.
    static func paddedAcross(_ g: ConvGeometry) -> Int {
        (tiles(g).across + Vector.scalarCount - 1) / Vector.scalarCount * Vector.scalarCount
    }

    /// Floats of workspace: the transformed weights, and per chunk a block of transformed inputs and outputs.
    static func workspaceCount(_ g: ConvGeometry, batch: Int) -> Int {
        16 * g.inChannels * g.outChannels + Parallel.chunkCount(batch) * chunkScratch(g)
    }

    /// A chunk's transformed inputs and outputs, and four padded input rows.
    static func chunkScratch(_ g: ConvGeometry) -> Int {
        16 * (g.inChannels + g.outChannels) * blockStride(g) + 4 * (2 * paddedAcross(g) + 16)
    }

    /// `output = conv(input, weight) + bias`, or `output += conv(...)` when `accumulate`. With `flipped`, the
    /// kernel is `weight` read as the transposed convolution's (`[C, O, 3, 3]`, each kernel rotated by 180°),
    /// which makes this the backward-data pass of a same-size convolution (``Conv2D/transposed(_:)``).
    static func forward(
        _ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, flipped: Bool,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, accumulate: Bool,
        workspace: UnsafeMutablePointer<Float>
    ) {
        transformWeights(g, weight, flipped: flipped, into: workspace)
        Parallel.forEachChunk(
            of: batch,
            WinogradJob(
                g: g, input: input, weights: workspace, bias: bias, output: output, accumulate: accumulate,
                scratch: workspace + 16 * g.inChannels * g.outChannels))
    }

    /// `U_ξ = (G g Gᵀ)[ξ]` for every kernel `g` of the `[O, C, 3, 3]` weights, stored `[ξ][O][C]` or, when
    /// ``transposesWeights(_:)``, `[ξ][C][O]`. Output channels are split over the cores.
    private static func transformWeights(
        _ g: ConvGeometry, _ weight: UnsafePointer<Float>, flipped: Bool, into u: UnsafeMutablePointer<Float>
    ) {
        Parallel.forEachChunk(
            of: g.outChannels,
            WeightTransformJob(
                g: g, weight: weight, flipped: flipped, transposes: transposesWeights(g), u: u))
    }
}

private struct WeightTransformJob: ChunkJob {
    let g: ConvGeometry
    let weight: UnsafePointer<Float>, flipped: Bool, transposes: Bool
    let u: UnsafeMutablePointer<Float>

    func run(samples outputs: Range<Int>, chunk: Int) {
        let (cs, os) = (g.inChannels, g.outChannels)
        for o in outputs {
            for c in 0..<cs {
                // The kernel of output o and input c: weight[o, c] or, flipped, weight[c, o] rotated by 180°.
                let k = flipped ? weight + (c * os + o) * 9 : weight + (o * cs + c) * 9
                @inline(__always) func w(_ i: Int, _ j: Int) -> Float { flipped ? k[8 - 3 * i - j] : k[3 * i + j] }
                // G g: four rows of three.
                var t = SIMD16<Float>()
                for j in 0..<3 {
                    let (a, b, e) = (w(0, j), w(1, j), w(2, j))
                    t[j] = a
                    t[3 + j] = 0.5 * (a + b + e)
                    t[6 + j] = 0.5 * (a - b + e)
                    t[9 + j] = e
                }
                // (G g) Gᵀ: 4x4, element ξ = 4 i + j at U_ξ[o, c].
                let (start, step) = transposes ? (c * os + o, cs * os) : (o * cs + c, cs * os)
                for i in 0..<4 {
                    let (a, b, e) = (t[3 * i], t[3 * i + 1], t[3 * i + 2])
                    let base = u + start + 4 * i * step
                    base[0] = a
                    base[step] = 0.5 * (a + b + e)
                    base[2 * step] = 0.5 * (a - b + e)
                    base[3 * step] = e
                }
            }
        }
    }
}

private struct WinogradJob: ChunkJob {
    let g: ConvGeometry
    let input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    let output: UnsafeMutablePointer<Float>
    let accumulate: Bool
    let scratch: UnsafeMutablePointer<Float>

    /// Processes each sample's tile rows (row `ty` of sample `n` is number `n * down + ty`) in blocks of
    /// ``Winograd/blockRows(_:)``.
    func run(samples: Range<Int>, chunk: Int) {
        let (down, across) = Winograd.tiles(g), stride = Winograd.blockStride(g)
        let transposes = Winograd.transposesWeights(g)
        let v = scratch + chunk * Winograd.chunkScratch(g), m = v + 16 * g.inChannels * stride
        let rows = m + 16 * g.outChannels * stride
        let rowsPerBlock = Winograd.blockRows(g)
        for n in samples {
            for start in Swift.stride(from: n * down, to: (n + 1) * down, by: rowsPerBlock) {
                let block = start..<min(start + rowsPerBlock, (n + 1) * down)
                transformInputs(block, into: v, stride: stride, rows: rows)
                for xi in 0..<16 {
                    // M_ξ[O, tiles] = U_ξ[O, C] · V_ξ[C, tiles].
                    BLAS.sgemm(
                        transposes ? .transposed : .none, .none, m: g.outChannels, n: block.count * across,
                        k: g.inChannels, a: weights + xi * g.inChannels * g.outChannels,
                        lda: transposes ? g.outChannels : g.inChannels,
                        b: v + xi * g.inChannels * stride, ldb: stride,
                        c: m + xi * g.outChannels * stride, ldc: stride)
                }
                transformOutputs(block, from: m, stride: stride)
            }
        }
    }

    /// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for the 4x4 input tile `d` of channel `c` under each tile `t` of the tile
    /// rows `block`, eight tiles at a time. The four input rows under a tile row are first copied with their
    /// zero padding into `rows`, so every load is whole: tile `tx` reads columns `2 tx ..< 2 tx + 4` there.
    private func transformInputs(
        _ block: Range<Int>, into v: UnsafeMutablePointer<Float>, stride: Int, rows: UnsafeMutablePointer<Float>
    ) {
        let (down, across) = Winograd.tiles(g), (h, w, cs) = (g.inputH, g.inputW, g.inChannels)
        let width = 2 * Winograd.paddedAcross(g) + 16, channelStride = cs * stride
        // Input column x sits at padded column x + padW; columns past the tiles' reach are not copied.
        let copied = min(w, 2 * across + 2 - g.padW)
        for c in 0..<cs {
            for (k, tileRow) in block.enumerated() {
                let (n, ty) = tileRow.quotientAndRemainder(dividingBy: down)
                let plane = input + (n * cs + c) * h * w
                for i in 0..<4 {
                    let row = rows + i * width, y = 2 * ty + i - g.padH
                    row.update(repeating: 0, count: width)
                    if y >= 0 && y < h && copied > 0 { (row + g.padW).update(from: plane + y * w, count: copied) }
                }
                dsg_winograd_input_row(rows, width, across, v + c * stride + k * across, channelStride)
            }
        }
    }

    /// The 2x2 outputs `Aᵀ M A` of each tile, plus the bias, written (or added) into the output.
    private func transformOutputs(_ block: Range<Int>, from m: UnsafePointer<Float>, stride: Int) {
        let (down, across) = Winograd.tiles(g), (h, w, os) = (g.outputH, g.outputW, g.outChannels)
        for o in 0..<os {
            for (k, tileRow) in block.enumerated() {
                let (n, ty) = tileRow.quotientAndRemainder(dividingBy: down)
                let top = output + ((n * os + o) * h + 2 * ty) * w
                dsg_winograd_output_row(
                    m + o * stride + k * across, os * stride, across, bias?[o] ?? 0, accumulate ? 1 : 0, top,
                    2 * ty + 1 < h ? top + w : nil, w)
            }
        }
    }
}

import Foundation

/// 2-D convolution over NCHW buffers by im2col + SGEMM; 3x3 stride-1 layers wide enough by ``Winograd``, and
/// depthwise layers by ``Depthwise``'s direct loops (their forward pass and stride-1 backward-data).
///
/// The batch is split into one contiguous range of samples per core (``Parallel``); each range lowers one
/// sample at a time into its own slice of the workspace, so the patch matrix stays in cache for the GEMM.
/// Layouts: input `[N, C, H, W]`, weight `[O, C / groups, KH, KW]`, bias `[O]`, output `[N, O, OH, OW]`.
/// `workspace` holds at least ``workspaceCount(_:batch:)`` floats; it is scratch and may be shared.
public enum Conv2D {
    /// Whether 3x3 stride-1 layers may run as ``Winograd`` and depthwise layers by ``Depthwise``'s direct loops.
    /// On unless the environment sets `DSG_CONVOLUTION=im2col`, or this is set to false before a model runs. Off,
    /// every convolution is im2col and GEMM, as before 2026-12-06; the fast paths agree with it to float
    /// rounding, not bit for bit (Docs/PERFORMANCE.md measures the difference).
    nonisolated(unsafe) public static var usesFastPaths =
        ProcessInfo.processInfo.environment["DSG_CONVOLUTION"] != "im2col"

    /// Floats of scratch needed by every entry point for geometry `g` and this batch size: a patch matrix per
    /// chunk; for the forward pass the transposed weights; for backward-weight, per extra chunk a private weight
    /// and bias gradient.
    public static func workspaceCount(_ g: ConvGeometry, batch: Int) -> Int {
        let chunks = Parallel.chunkCount(batch)
        let forward = g.weightCount + chunks * scratchPerChunk(g)
        let backwardWeight = chunks * scratchPerChunk(g) + (chunks - 1) * (g.weightCount + g.outChannels)
        // The fast paths' needs are counted whether or not they are on now: they may be switched on later.
        if Depthwise.applies(to: g, enabled: true) {
            let backward =
                Depthwise.transposed(g, enabled: true).map { Depthwise.workspaceCount($0, batch: batch) } ?? 0
            return max(forward, backwardWeight, Depthwise.workspaceCount(g, batch: batch), backward)
        }
        let winograd = Winograd.applies(to: g, enabled: true) ? Winograd.workspaceCount(g, batch: batch) : 0
        guard let t = transposed(g) else { return max(forward, backwardWeight, winograd) }
        let transposedWinograd = Winograd.applies(to: t, enabled: true) ? Winograd.workspaceCount(t, batch: batch) : 0
        return max(forward, backwardWeight, winograd, g.weightCount + chunks * scratchPerChunk(t), transposedWinograd)
    }

    /// For a stride-1, ungrouped convolution whose output is as large as its input, backward-data is itself
    /// such a convolution: of the output gradient, with the kernel flipped and its channel axes swapped. That
    /// convolution's geometry, or nil. Its lowering copies whole shifted planes, cheaper than col2im's scattered
    /// additions, but its GEMM has as many rows as the layer has input channels: with fewer than 8 (a first
    /// layer on grey images: 1) the GEMM degenerates, and col2im is faster (measured in dsg-bench).
    static func transposed(_ g: ConvGeometry) -> ConvGeometry? {
        guard g.strideH == 1, g.strideW == 1, g.groups == 1, g.inChannels >= 8, !g.isPointwise,
            g.outputH == g.inputH, g.outputW == g.inputW
        else { return nil }
        return try? ConvGeometry(
            inChannels: g.outChannels, outChannels: g.inChannels, kernel: (g.kernelH, g.kernelW),
            padding: (g.dilationH * (g.kernelH - 1) - g.padH, g.dilationW * (g.kernelW - 1) - g.padW),
            dilation: (g.dilationH, g.dilationW), input: (g.outputH, g.outputW))
    }

    /// Whether the forward GEMM multiplies by transposed weights: when it is small enough (M·N·K ≤ 100³) for
    /// OpenBLAS's small-matrix path, whose no-transpose kernel mallocs on every call (OpenBLAS 0.3.21; the
    /// transposed one does not and is about as fast, `Benchmarks/openblas-small-gemm`). Larger GEMMs keep the weights
    /// as they are: transposing a large layer's weights on every call would cost more than the GEMM gains.
    public static func forwardTransposesWeights(_ g: ConvGeometry) -> Bool {
        g.groupOutChannels * g.outputPlane * g.groupPatchSize <= 1_000_000
    }

    /// Scratch per chunk: the patch matrix and what im2col needs besides it.
    static func scratchPerChunk(_ g: ConvGeometry) -> Int {
        g.isPointwise ? 0 : g.columnCount + Im2Col.scratchCount(g)
    }

    /// `output = conv(input, weight) + bias`.
    public static func forward(
        _ g: ConvGeometry, batch: Int,
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>
    ) {
        if Depthwise.applies(to: g) {
            Depthwise.forward(
                g, batch: batch, input: input, weight: weight, flipped: false, bias: bias, output: output,
                accumulate: false, workspace: workspace)
            return
        }
        if Winograd.applies(to: g) {
            Winograd.forward(
                g, batch: batch, input: input, weight: weight, flipped: false, bias: bias, output: output,
                accumulate: false, workspace: workspace)
            return
        }
        let transposes = forwardTransposesWeights(g)
        if transposes {
            // Each group's [og, patch] block to [patch, og].
            let (og, patch) = (g.groupOutChannels, g.groupPatchSize)
            for group in 0..<g.groups {
                let src = weight + group * og * patch, dst = workspace + group * og * patch
                for o in 0..<og { for p in 0..<patch { dst[p * og + o] = src[o * patch + p] } }
            }
        }
        Parallel.forEachChunk(
            of: batch,
            ForwardJob(
                g: g, input: input, weight: transposes ? UnsafePointer(workspace) : weight,
                weightIsTransposed: transposes, bias: bias,
                output: output, workspace: workspace + g.weightCount, accumulate: false))
    }

    /// `inputGrad += conv_transpose(outputGrad, weight)`.
    public static func backwardData(
        _ g: ConvGeometry, batch: Int,
        outputGrad: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        inputGrad: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>
    ) {
        if let t = Depthwise.transposed(g) {
            Depthwise.forward(
                t, batch: batch, input: outputGrad, weight: weight, flipped: true, bias: nil, output: inputGrad,
                accumulate: true, workspace: workspace)
            return
        }
        if let t = transposed(g), Winograd.applies(to: t) {
            Winograd.forward(
                t, batch: batch, input: outputGrad, weight: weight, flipped: true, bias: nil, output: inputGrad,
                accumulate: true, workspace: workspace)
            return
        }
        if let t = transposed(g) {
            // flipped[c, o, i, j] = weight[o, c, KH − 1 − i, KW − 1 − j], or stored transposed, at [(o, i, j), c],
            // when the forward job multiplies by transposed weights.
            let (kh, kw) = (g.kernelH, g.kernelW), transposes = forwardTransposesWeights(t)
            for o in 0..<g.outChannels {
                for c in 0..<g.inChannels {
                    let src = weight + (o * g.inChannels + c) * kh * kw
                    let (start, step) =
                        transposes
                        ? (o * kh * kw * g.inChannels + c, g.inChannels) : ((c * g.outChannels + o) * kh * kw, 1)
                    for k in 0..<(kh * kw) { workspace[start + k * step] = src[kh * kw - 1 - k] }
                }
            }
            Parallel.forEachChunk(
                of: batch,
                ForwardJob(
                    g: t, input: outputGrad, weight: workspace, weightIsTransposed: transposes, bias: nil,
                    output: inputGrad,
                    workspace: workspace + g.weightCount, accumulate: true))
            return
        }
        Parallel.forEachChunk(
            of: batch,
            BackwardDataJob(g: g, outputGrad: outputGrad, weight: weight, inputGrad: inputGrad, workspace: workspace))
    }

    /// `weightGrad += dL/dW` and, when given, `biasGrad += dL/db`.
    public static func backwardWeight(
        _ g: ConvGeometry, batch: Int,
        input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>,
        weightGrad: UnsafeMutablePointer<Float>, biasGrad: UnsafeMutablePointer<Float>?,
        workspace: UnsafeMutablePointer<Float>
    ) {
        // Chunk 0 accumulates into the caller's buffers; the others into private ones, summed at the end.
        let chunks = Parallel.chunkCount(batch)
        let job = BackwardWeightJob(
            g: g, input: input, outputGrad: outputGrad, weightGrad: weightGrad, biasGrad: biasGrad,
            workspace: workspace,
            privateGrads: workspace + chunks * scratchPerChunk(g))
        Parallel.forEachChunk(of: batch, job)
        for chunk in 1..<chunks {
            let partial = job.privateGrads + (chunk - 1) * job.privateStride
            for i in 0..<g.weightCount { weightGrad[i] += partial[i] }
            if let biasGrad { for o in 0..<g.outChannels { biasGrad[o] += partial[g.weightCount + o] } }
        }
    }
}

// MARK: - Per-chunk work

/// The patch matrix of one sample: the sample itself for pointwise convolutions, else im2col into `scratch`.
@inline(__always)
private func lowered(
    _ sample: UnsafePointer<Float>, _ g: ConvGeometry, _ scratch: UnsafeMutablePointer<Float>
) -> UnsafePointer<Float> {
    if g.isPointwise { return sample }
    Im2Col.lower(sample, g, into: scratch, scratch: scratch + g.columnCount)
    return UnsafePointer(scratch)
}

private struct ForwardJob: ChunkJob {
    let g: ConvGeometry
    /// Per group `[og, patch]`, or `[patch, og]` when `weightIsTransposed`.
    let input: UnsafePointer<Float>, weight: UnsafePointer<Float>, weightIsTransposed: Bool, bias: UnsafePointer<Float>?
    let output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>
    /// Add to `output` (backward-data through the transposed convolution) instead of overwriting it.
    let accumulate: Bool

    func run(samples: Range<Int>, chunk: Int) {
        let plane = g.outputPlane, patch = g.groupPatchSize, og = g.groupOutChannels
        let scratch = workspace + chunk * Conv2D.scratchPerChunk(g)
        for n in samples {
            let columns = lowered(input + n * g.inChannels * g.inputPlane, g, scratch)
            let out = output + n * g.outChannels * plane
            for group in 0..<g.groups {
                // out_g[og, OHW] (+)= W_g[og, patch] * columns_g[patch, OHW]
                BLAS.sgemm(
                    weightIsTransposed ? .transposed : .none, .none, m: og, n: plane, k: patch,
                    a: weight + group * og * patch, lda: weightIsTransposed ? og : patch,
                    b: columns + group * patch * plane, ldb: plane,
                    beta: accumulate ? 1 : 0,
                    c: out + group * og * plane, ldc: plane)
            }
            if let bias {
                for o in 0..<g.outChannels {
                    let b = bias[o], row = out + o * plane
                    for i in 0..<plane { row[i] += b }
                }
            }
        }
    }
}

private struct BackwardDataJob: ChunkJob {
    let g: ConvGeometry
    let outputGrad: UnsafePointer<Float>, weight: UnsafePointer<Float>
    let inputGrad: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>

    func run(samples: Range<Int>, chunk: Int) {
        let plane = g.outputPlane, patch = g.groupPatchSize, og = g.groupOutChannels
        let scratch = workspace + chunk * Conv2D.scratchPerChunk(g)
        for n in samples {
            let dy = outputGrad + n * g.outChannels * plane
            let dx = inputGrad + n * g.inChannels * g.inputPlane
            // A pointwise convolution's patch matrix is the input itself: accumulate straight into it.
            let dColumns = g.isPointwise ? dx : scratch
            for group in 0..<g.groups {
                // dcolumns_g[patch, OHW] = W_g^T[patch, og] * dy_g[og, OHW]
                BLAS.sgemm(
                    .transposed, .none, m: patch, n: plane, k: og,
                    a: weight + group * og * patch, lda: patch,
                    b: dy + group * og * plane, ldb: plane,
                    beta: g.isPointwise ? 1 : 0,
                    c: dColumns + group * patch * plane, ldc: plane)
            }
            if !g.isPointwise { Im2Col.accumulate(scratch, g, into: dx, scratch: scratch + g.columnCount) }
        }
    }
}

private struct BackwardWeightJob: ChunkJob {
    let g: ConvGeometry
    let input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>
    let weightGrad: UnsafeMutablePointer<Float>, biasGrad: UnsafeMutablePointer<Float>?
    let workspace: UnsafeMutablePointer<Float>
    /// Private `[weight | bias]` gradients of chunks 1, 2, ...
    let privateGrads: UnsafeMutablePointer<Float>
    var privateStride: Int { g.weightCount + g.outChannels }

    func run(samples: Range<Int>, chunk: Int) {
        let plane = g.outputPlane, patch = g.groupPatchSize, og = g.groupOutChannels
        let scratch = workspace + chunk * Conv2D.scratchPerChunk(g)
        let dw = chunk == 0 ? weightGrad : privateGrads + (chunk - 1) * privateStride
        let db = chunk == 0 ? biasGrad : (biasGrad == nil ? nil : dw + g.weightCount)
        if chunk > 0 { dw.update(repeating: 0, count: privateStride) }
        for n in samples {
            let columns = lowered(input + n * g.inChannels * g.inputPlane, g, scratch)
            let dy = outputGrad + n * g.outChannels * plane
            for group in 0..<g.groups {
                // dW_g[og, patch] += dy_g[og, OHW] * columns_g[patch, OHW]^T
                BLAS.sgemm(
                    .none, .transposed, m: og, n: patch, k: plane,
                    a: dy + group * og * plane, lda: plane,
                    b: columns + group * patch * plane, ldb: plane,
                    beta: 1,
                    c: dw + group * og * patch, ldc: patch)
            }
            if let db {
                for o in 0..<g.outChannels {
                    let row = dy + o * plane
                    var s: Float = 0
                    for i in 0..<plane { s += row[i] }
                    db[o] += s
                }
            }
        }
    }
}

/// 2-D convolution over NCHW buffers by im2col + SGEMM, one sample at a time so the patch matrix stays in cache.
///
/// Layouts: input `[N, C, H, W]`, weight `[O, C / groups, KH, KW]`, bias `[O]`, output `[N, O, OH, OW]`.
/// `workspace` holds at least ``workspaceCount(_:)`` floats; it is scratch and may be shared between layers.
public enum Conv2D {
    /// Floats of scratch needed by every entry point for geometry `g`.
    public static func workspaceCount(_ g: ConvGeometry) -> Int { g.isPointwise ? 0 : g.columnCount }

    /// `output = conv(input, weight) + bias`.
    public static func forward(
        _ g: ConvGeometry, batch: Int,
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>
    ) {
        let plane = g.outputPlane, patch = g.groupPatchSize, og = g.groupOutChannels
        for n in 0..<batch {
            let columns = lowered(input + n * g.inChannels * g.inputPlane, g, workspace)
            let out = output + n * g.outChannels * plane
            for group in 0..<g.groups {
                // out_g[og, OHW] = W_g[og, patch] * columns_g[patch, OHW]
                BLAS.sgemm(
                    .none, .none, m: og, n: plane, k: patch,
                    a: weight + group * og * patch, lda: patch,
                    b: columns + group * patch * plane, ldb: plane,
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

    /// `inputGrad += conv_transpose(outputGrad, weight)`.
    public static func backwardData(
        _ g: ConvGeometry, batch: Int,
        outputGrad: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        inputGrad: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>
    ) {
        let plane = g.outputPlane, patch = g.groupPatchSize, og = g.groupOutChannels
        for n in 0..<batch {
            let dy = outputGrad + n * g.outChannels * plane
            let dx = inputGrad + n * g.inChannels * g.inputPlane
            // A pointwise convolution's patch matrix is the input itself: accumulate straight into it.
            let dColumns = g.isPointwise ? dx : workspace
            for group in 0..<g.groups {
                // dcolumns_g[patch, OHW] = W_g^T[patch, og] * dy_g[og, OHW]
                BLAS.sgemm(
                    .transposed, .none, m: patch, n: plane, k: og,
                    a: weight + group * og * patch, lda: patch,
                    b: dy + group * og * plane, ldb: plane,
                    beta: g.isPointwise ? 1 : 0,
                    c: dColumns + group * patch * plane, ldc: plane)
            }
            if !g.isPointwise { Im2Col.accumulate(workspace, g, into: dx) }
        }
    }

    /// `weightGrad += dL/dW` and, when given, `biasGrad += dL/db`.
    public static func backwardWeight(
        _ g: ConvGeometry, batch: Int,
        input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>,
        weightGrad: UnsafeMutablePointer<Float>, biasGrad: UnsafeMutablePointer<Float>?,
        workspace: UnsafeMutablePointer<Float>
    ) {
        let plane = g.outputPlane, patch = g.groupPatchSize, og = g.groupOutChannels
        for n in 0..<batch {
            let columns = lowered(input + n * g.inChannels * g.inputPlane, g, workspace)
            let dy = outputGrad + n * g.outChannels * plane
            for group in 0..<g.groups {
                // dW_g[og, patch] += dy_g[og, OHW] * columns_g[patch, OHW]^T
                BLAS.sgemm(
                    .none, .transposed, m: og, n: patch, k: plane,
                    a: dy + group * og * plane, lda: plane,
                    b: columns + group * patch * plane, ldb: plane,
                    beta: 1,
                    c: weightGrad + group * og * patch, ldc: patch)
            }
            if let biasGrad {
                for o in 0..<g.outChannels {
                    let row = dy + o * plane
                    var s: Float = 0
                    for i in 0..<plane { s += row[i] }
                    biasGrad[o] += s
                }
            }
        }
    }

    /// The patch matrix of one sample: the sample itself for pointwise convolutions, else im2col into `workspace`.
    @inline(__always)
    private static func lowered(
        _ sample: UnsafePointer<Float>, _ g: ConvGeometry, _ workspace: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        if g.isPointwise { return sample }
        Im2Col.lower(sample, g, into: workspace)
        return UnsafePointer(workspace)
    }
}

internal import CDSGKernels

/// Depthwise convolutions (one input channel per output channel: MobileNetV2's and EfficientNet's 3x3 and 5x5
/// layers) by direct loops over each plane in C (`dsg_depthwise_plane`), instead of one single-row GEMM per
/// channel and sample after im2col. The forward pass, and backward-data of stride-1 layers as the forward pass
/// of the output gradient with the kernel rotated by 180°; other backward passes keep the GEMM path. Planes
/// are split over the cores.
enum Depthwise {
    /// Whether `g` is a depthwise convolution (as many groups as input and output channels) and the fast paths
    /// are on (``Conv2D/usesFastPaths``).
    static func applies(to g: ConvGeometry, enabled: Bool = Conv2D.usesFastPaths) -> Bool {
        enabled && g.groups == g.inChannels && g.groups == g.outChannels
    }

    /// The stride-1 convolution whose forward pass is `g`'s backward-data, or nil (strided layers, or padding
    /// wider than the dilated kernel).
    static func transposed(_ g: ConvGeometry, enabled: Bool = Conv2D.usesFastPaths) -> ConvGeometry? {
        guard applies(to: g, enabled: enabled), g.strideH == 1, g.strideW == 1 else { return nil }
        return try? ConvGeometry(
            inChannels: g.outChannels, outChannels: g.inChannels, kernel: (g.kernelH, g.kernelW),
            padding: (g.dilationH * (g.kernelH - 1) - g.padH, g.dilationW * (g.kernelW - 1) - g.padW),
            dilation: (g.dilationH, g.dilationW), groups: g.groups, input: (g.outputH, g.outputW))
    }

    /// Floats of scratch per chunk: the kernel's padded input rows.
    static func chunkScratch(_ g: ConvGeometry) -> Int {
        g.kernelH * dsg_depthwise_row_width(g.outputW, g.kernelW, g.strideW, g.dilationW)
    }

    static func workspaceCount(_ g: ConvGeometry, batch: Int) -> Int {
        Parallel.chunkCount(batch * g.inChannels) * chunkScratch(g)
    }

    /// `output = conv(input, weight) + bias`, or with `flipped` and `accumulate` the backward-data pass through
    /// ``transposed(_:)``'s geometry `g`.
    static func forward(
        _ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, flipped: Bool,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, accumulate: Bool,
        workspace: UnsafeMutablePointer<Float>
    ) {
        Parallel.forEachChunk(
            of: batch * g.inChannels,
            DepthwiseJob(
                g: g, input: input, weight: weight, flipped: flipped, bias: bias, output: output,
                accumulate: accumulate, scratch: workspace))
    }
}

private struct DepthwiseJob: ChunkJob {
    let g: ConvGeometry
    let input: UnsafePointer<Float>, weight: UnsafePointer<Float>, flipped: Bool, bias: UnsafePointer<Float>?
    let output: UnsafeMutablePointer<Float>, accumulate: Bool
    let scratch: UnsafeMutablePointer<Float>

    func run(samples planes: Range<Int>, chunk: Int) {
        let kernelSize = g.kernelH * g.kernelW
        for plane in planes {
            let channel = plane % g.inChannels
            dsg_depthwise_plane(
                input + plane * g.inputPlane, g.inputH, g.inputW, weight + channel * kernelSize, g.kernelH, g.kernelW,
                flipped ? 1 : 0, g.strideH, g.strideW, g.padH, g.padW, g.dilationH, g.dilationW, bias?[channel] ?? 0,
                accumulate ? 1 : 0, output + plane * g.outputPlane, g.outputH, g.outputW,
                scratch + chunk * Depthwise.chunkScratch(g))
        }
    }
}

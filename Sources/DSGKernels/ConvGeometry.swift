/// The shape of one 2-D convolution over NCHW data, validated once.
///
/// Weights are `[O, C / groups, KH, KW]`; input is `[N, C, H, W]`; output is `[N, O, OH, OW]` with
/// `OH = (H + 2 * padH - dilationH * (KH - 1) - 1) / strideH + 1` (and likewise for the width).
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelH: Int, kernelW: Int
    public let strideH: Int, strideW: Int
    public let padH: Int, padW: Int
    public let dilationH: Int, dilationW: Int
    public let groups: Int
    public let inputH: Int, inputW: Int
    public let outputH: Int, outputW: Int

    public init(
        inChannels: Int, outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
        padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, input: (Int, Int)
    ) throws(ConvGeometryError) {
        guard inChannels > 0, outChannels > 0 else { throw .nonPositive("channel count") }
        guard kernel.0 > 0, kernel.1 > 0 else { throw .nonPositive("kernel size") }
        guard stride.0 > 0, stride.1 > 0 else { throw .nonPositive("stride") }
        guard dilation.0 > 0, dilation.1 > 0 else { throw .nonPositive("dilation") }
        guard padding.0 >= 0, padding.1 >= 0 else { throw .negativePadding }
        guard groups > 0, inChannels % groups == 0, outChannels % groups == 0 else {
            throw .groupsDoNotDivide(groups: groups, inChannels: inChannels, outChannels: outChannels)
        }
        let spanH = dilation.0 * (kernel.0 - 1) + 1, spanW = dilation.1 * (kernel.1 - 1) + 1
        let paddedH = input.0 + 2 * padding.0, paddedW = input.1 + 2 * padding.1
        guard input.0 > 0, input.1 > 0, spanH <= paddedH, spanW <= paddedW else {
            throw .kernelLargerThanInput(kernelH: spanH, kernelW: spanW, paddedH: paddedH, paddedW: paddedW)
        }
        self.inChannels = inChannels
        self.outChannels = outChannels
        (kernelH, kernelW) = kernel
        (strideH, strideW) = stride
        (padH, padW) = padding
        (dilationH, dilationW) = dilation
        self.groups = groups
        (inputH, inputW) = input
        outputH = (paddedH - spanH) / stride.0 + 1
        outputW = (paddedW - spanW) / stride.1 + 1
    }

    /// Input channels seen by one group.
    public var groupInChannels: Int { inChannels / groups }
    /// Output channels produced by one group.
    public var groupOutChannels: Int { outChannels / groups }
    /// Rows of the im2col matrix for one group: `C / groups * KH * KW`.
    public var groupPatchSize: Int { groupInChannels * kernelH * kernelW }
    /// Elements of one weight tensor.
    public var weightCount: Int { outChannels * groupPatchSize }
    public var inputPlane: Int { inputH * inputW }
    public var outputPlane: Int { outputH * outputW }
    /// Elements of the im2col buffer for one sample: `C * KH * KW * OH * OW`.
    public var columnCount: Int { inChannels * kernelH * kernelW * outputPlane }
    /// A 1x1, stride-1, unpadded convolution reads its input directly as the im2col matrix.
    public var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }
    /// Multiply-adds times two, for one sample's forward pass.
    public var flopsPerSample: Double { 2 * Double(outChannels) * Double(groupPatchSize) * Double(outputPlane) }

    public var description: String {
        "conv \(inChannels)->\(outChannels) k\(kernelH)x\(kernelW) s\(strideH)x\(strideW) p\(padH)x\(padW)"
            + (dilationH > 1 || dilationW > 1 ? " d\(dilationH)x\(dilationW)" : "")
            + (groups > 1 ? " g\(groups)" : "") + " on \(inputH)x\(inputW)"
    }
}

/// Why a convolution's geometry is impossible.
public enum ConvGeometryError: Error, Equatable, CustomStringConvertible {
    case nonPositive(String)
    case negativePadding
    case groupsDoNotDivide(groups: Int, inChannels: Int, outChannels: Int)
    case kernelLargerThanInput(kernelH: Int, kernelW: Int, paddedH: Int, paddedW: Int)

    public var description: String {
        switch self {
        case .nonPositive(let what):
            return "\(what) must be positive"
        case .negativePadding:
            return "padding must not be negative"
        case .groupsDoNotDivide(let g, let c, let o):
            return "groups \(g) must divide both the input channels \(c) and the output channels \(o)"
        case .kernelLargerThanInput(let kh, let kw, let ph, let pw):
            return "the dilated kernel \(kh)x\(kw) is larger than the padded input \(ph)x\(pw)"
        }
    }
}

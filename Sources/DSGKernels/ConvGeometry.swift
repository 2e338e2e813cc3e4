/// The shape of one 2-D convolution over NCHW data, validated once.
///
/// Weights are `[O, C / groups, KH, KW]`; input is `[N, C, H, W]`; output is `[N, O, OH, OW]` with
/// `OH = (H + 2 * padH - dilationH * (KH - 1) - 1) / strideH + 1` (and likewise for the width).
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    /// Input channels `C`.
    public let inChannels: Int
    /// Output channels `O`, the number of filters.
    public let outChannels: Int
    /// Kernel height `KH` and width `KW`, before dilation.
    public let kernelH: Int, kernelW: Int
    /// Vertical and horizontal stride, at least 1.
    public let strideH: Int, strideW: Int
    /// Zero padding added on each side (top and bottom, left and right), at least 0.
    public let padH: Int, padW: Int
    /// Spacing between kernel taps (1 for an ordinary convolution).
    public let dilationH: Int, dilationW: Int
    /// Channel groups: input and output channels are split into `groups` independent convolutions (`groups == C`
    /// for a depthwise one). Divides both `C` and `O`.
    public let groups: Int
    /// Input height `H` and width `W`.
    public let inputH: Int, inputW: Int
    /// Output height `OH` and width `OW`, from the formula above.
    public let outputH: Int, outputW: Int

    /// Validates the geometry and computes the output size; `kernel`, `stride`, `padding`, `dilation` and `input` are
    /// `(height, width)`. Throws a ``ConvGeometryError`` for a non-positive size, negative padding, groups that do not
    /// divide the channels, or a dilated kernel larger than the padded input.
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
    /// Elements of one input channel plane: `H * W`.
    public var inputPlane: Int { inputH * inputW }
    /// Elements of one output channel plane: `OH * OW`, the columns of the im2col matrix.
    public var outputPlane: Int { outputH * outputW }
    /// Elements of the im2col buffer for one sample: `C * KH * KW * OH * OW`.
    public var columnCount: Int { inChannels * kernelH * kernelW * outputPlane }
    /// A 1x1, stride-1, unpadded convolution reads its input directly as the im2col matrix.
    public var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }
    /// Multiply-adds times two, for one sample's forward pass.
    public var flopsPerSample: Double { 2 * Double(outChannels) * Double(groupPatchSize) * Double(outputPlane) }

    /// A compact summary such as `conv 16->32 k3x3 s2x2 p1x1 on 32x32` (dilation and groups only when not 1).
    public var description: String {
        "conv \(inChannels)->\(outChannels) k\(kernelH)x\(kernelW) s\(strideH)x\(strideW) p\(padH)x\(padW)"
            + (dilationH > 1 || dilationW > 1 ? " d\(dilationH)x\(dilationW)" : "")
            + (groups > 1 ? " g\(groups)" : "") + " on \(inputH)x\(inputW)"
    }
}

/// Why a convolution's geometry is impossible.
public enum ConvGeometryError: Error, Equatable, CustomStringConvertible {
    /// A channel count, kernel size, stride or dilation (named by the string) is zero or negative.
    case nonPositive(String)
    /// A padding is negative.
    case negativePadding
    /// `groups` is not positive or does not divide both the input and the output channels.
    case groupsDoNotDivide(groups: Int, inChannels: Int, outChannels: Int)
    /// The dilated kernel (`dilation * (kernel - 1) + 1`) does not fit in the padded input, or the input is empty.
    case kernelLargerThanInput(kernelH: Int, kernelW: Int, paddedH: Int, paddedW: Int)

    /// The reason in words, with the offending sizes.
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

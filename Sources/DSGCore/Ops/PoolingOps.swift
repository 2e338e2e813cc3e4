import DSGKernels

/// Max pooling over `[C, H, W]` (PyTorch `MaxPool2d`); padding never wins.
public struct MaxPool2dOp: GraphOperator {
    /// The window, as a depthwise "convolution" over the input (channels in = out, groups = channels).
    public let window: ConvGeometry
    /// `"MaxPool2d"`.
    public var kind: String { "MaxPool2d" }

    /// Max pooling over `window`, which should be depthwise (`groups == inChannels == outChannels`), as
    /// ``ModelBuilder/maxPool(_:_:kernel:stride:padding:)`` makes it.
    public init(window: ConvGeometry) { self.window = window }

    /// `[C, OH, OW]`; throws unless there is one input of the window's `[C, H, W]`, and for padding more than half
    /// the window (``GraphError/invalidGeometry(node:op:input:reason:)``).
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        try poolOutputShape(window, inputs, node, kind)
    }

    /// One winner index per output element, for the backward pass.
    public func savedIndexCount(batch: Int) -> Int { batch * window.outChannels * window.outputPlane }

    /// The maximum of each window, saving where it was.
    public func forward(_ c: NodeContext) throws(GraphError) {
        Pooling.maxForward(window, batch: c.batch, input: c.inputs[0], output: c.output, argmax: c.savedIndices)
    }

    /// Accumulates each output gradient into the input element that won its window.
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        Pooling.maxBackward(window, batch: c.batch, outputGrad: c.outputGrad, argmax: c.savedIndices, inputGrad: dx)
    }
}

/// Average pooling over `[C, H, W]` (PyTorch `AvgPool2d` with `count_include_pad=True`).
public struct AvgPool2dOp: GraphOperator {
    /// The window, as a depthwise "convolution" over the input (channels in = out, groups = channels).
    public let window: ConvGeometry
    /// `"AvgPool2d"`.
    public var kind: String { "AvgPool2d" }

    /// Average pooling over `window`, which should be depthwise, as
    /// ``ModelBuilder/avgPool(_:_:kernel:stride:padding:)`` makes it.
    public init(window: ConvGeometry) { self.window = window }

    /// `[C, OH, OW]`; throws unless there is one input of the window's `[C, H, W]`, and for padding more than half
    /// the window.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        try poolOutputShape(window, inputs, node, kind)
    }

    /// The mean of each window, padding counted as zeros in the `KH * KW` divisor.
    public func forward(_ c: NodeContext) throws(GraphError) {
        Pooling.averageForward(window, batch: c.batch, input: c.inputs[0], output: c.output)
    }

    /// Accumulates each output gradient, divided by `KH * KW`, into every in-image input element of its window.
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        Pooling.averageBackward(window, batch: c.batch, outputGrad: c.outputGrad, inputGrad: dx)
    }
}

private func poolOutputShape(_ w: ConvGeometry, _ inputs: [Shape], _ node: String, _ kind: String) throws(GraphError)
    -> Shape
{
    guard inputs.count == 1, inputs[0] == [w.inChannels, w.inputH, w.inputW] else {
        throw .shapeMismatch(
            node: node, op: kind, inputs: inputs, expected: "one input [\(w.inChannels), \(w.inputH), \(w.inputW)]")
    }
    // As in PyTorch: with more padding than half the window, a window could lie wholly in the padding.
    guard 2 * w.padH <= w.kernelH, 2 * w.padW <= w.kernelW else {
        throw .invalidGeometry(
            node: node, op: kind, input: inputs[0],
            reason: "padding must be at most half the window (\(w.kernelH)x\(w.kernelW))")
    }
    return [w.outChannels, w.outputH, w.outputW]
}

/// Mean over the spatial plane: `[C, H, W] -> [C, 1, 1]` (PyTorch `AdaptiveAvgPool2d(1)`, ONNX `GlobalAveragePool`).
public struct GlobalAvgPoolOp: GraphOperator {
    /// `"GlobalAveragePool"` (ONNX's name).
    public var kind: String { "GlobalAveragePool" }
    /// A global average pooling node; it owns no tensors.
    public init() {}

    /// `[C, 1, 1]`; throws unless there is one input `[C, H, W]`.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0].rank == 3 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input [C, H, W]")
        }
        return [inputs[0][0], 1, 1]
    }

    /// The mean of each channel plane (summed in Float).
    public func forward(_ c: NodeContext) throws(GraphError) {
        let plane = c.inputShapes[0][1] * c.inputShapes[0][2]
        let scale = 1 / Float(plane)
        for i in 0..<c.outputCount {
            let row = c.inputs[0] + i * plane
            var s: Float = 0
            for j in 0..<plane { s += row[j] }
            c.output[i] = s * scale
        }
    }

    /// Accumulates each channel's output gradient, divided by `H * W`, into every element of its plane.
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        let plane = c.inputShapes[0][1] * c.inputShapes[0][2]
        let scale = 1 / Float(plane)
        for i in 0..<c.outputCount {
            let d = c.outputGrad[i] * scale, row = dx + i * plane
            for j in 0..<plane { row[j] += d }
        }
    }
}

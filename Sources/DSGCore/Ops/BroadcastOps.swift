/// A feature map times one factor per channel: `[C, H, W] × [C, 1, 1]` (a squeeze-excite block's gate), the
/// second input broadcast over each channel's plane.
public struct ChannelMultiplyOp: GraphOperator {
    /// `"ChannelMul"`.
    public var kind: String { "ChannelMul" }
    /// A channel-wise product node; it owns no tensors.
    public init() {}

    /// The first input's shape; throws unless the inputs are `[C, H, W]` and `[C, 1, 1]`.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 2, inputs[0].rank == 3, inputs[1] == [inputs[0][0], 1, 1] else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "[C, H, W] and [C, 1, 1]")
        }
        return inputs[0]
    }

    /// `y[n, c, p] = x[n, c, p] · s[n, c]`.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let x = c.inputs[0], s = c.inputs[1], plane = c.inputShapes[0][1] * c.inputShapes[0][2]
        for row in 0..<(c.outputCount / plane) {
            let factor = s[row]
            for p in 0..<plane { c.output[row * plane + p] = x[row * plane + p] * factor }
        }
    }

    /// Accumulates `dx += dy · s` and `ds += Σ_p dy · x` (summed in Double).
    public func backward(_ c: NodeContext) {
        let x = c.inputs[0], s = c.inputs[1], dy = c.outputGrad, plane = c.inputShapes[0][1] * c.inputShapes[0][2]
        for row in 0..<(c.outputCount / plane) {
            if let dx = c.inputGrads[0] { for p in 0..<plane { dx[row * plane + p] += dy[row * plane + p] * s[row] } }
            if let ds = c.inputGrads[1] {
                var sum = 0.0
                for p in 0..<plane { sum += Double(dy[row * plane + p]) * Double(x[row * plane + p]) }
                ds[row] += Float(sum)
            }
        }
    }
}

/// Every element times a constant: `y = factor · x` (an exported `x * 2`).
public struct ScaleOp: GraphOperator {
    /// The constant.
    public let factor: Float
    /// `"Scale"`.
    public var kind: String { "Scale" }
    /// A node multiplying its input by `factor`; it owns no tensors.
    public init(_ factor: Float) { self.factor = factor }

    /// The input's shape; throws unless there is exactly one input.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input")
        }
        return inputs[0]
    }

    /// `y = factor · x`.
    public func forward(_ c: NodeContext) throws(GraphError) {
        for i in 0..<c.outputCount { c.output[i] = factor * c.inputs[0][i] }
    }

    /// Accumulates `dx += factor · dy`.
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        for i in 0..<c.outputCount { dx[i] += factor * c.outputGrad[i] }
    }
}

/// A feature map plus one value per channel from a second input: `[C, H, W] + [C, 1, 1]` (ONNX's Add broadcasting a
/// per-channel value over each plane).
public struct ChannelAddOp: GraphOperator {
    /// `"ChannelAdd"`.
    public var kind: String { "ChannelAdd" }
    /// A channel-wise sum node; it owns no tensors.
    public init() {}

    /// The first input's shape; throws unless the inputs are `[C, H, W]` and `[C, 1, 1]`.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 2, inputs[0].rank == 3, inputs[0].elementCount > 0, inputs[1] == [inputs[0][0], 1, 1]
        else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "[C, H, W] (not empty) and [C, 1, 1]")
        }
        return inputs[0]
    }

    /// `y[n, c, p] = x[n, c, p] + s[n, c]`.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let x = c.inputs[0], s = c.inputs[1], plane = c.inputShapes[0][1] * c.inputShapes[0][2]
        for row in 0..<(c.outputCount / plane) {
            for p in 0..<plane { c.output[row * plane + p] = x[row * plane + p] + s[row] }
        }
    }

    /// Accumulates `dx += dy` and `ds += Σ_p dy` (summed in Double).
    public func backward(_ c: NodeContext) {
        let dy = c.outputGrad, plane = c.inputShapes[0][1] * c.inputShapes[0][2]
        if let dx = c.inputGrads[0] { for i in 0..<c.outputCount { dx[i] += dy[i] } }
        guard let ds = c.inputGrads[1] else { return }
        for row in 0..<(c.outputCount / plane) {
            var sum = 0.0
            for p in 0..<plane { sum += Double(dy[row * plane + p]) }
            ds[row] += Float(sum)
        }
    }
}

/// A learned value per channel added to a feature map `[C, H, W]` or a feature vector `[C]`: `y = x + bias[c]`
/// (an imported Add of a constant, as a convolution without bias followed by Add, or a scalar shift).
public struct BiasOp: GraphOperator {
    /// The channels `C` (the first per-sample axis).
    public let channels: Int
    /// `"Bias"`.
    public var kind: String { "Bias" }
    /// A node adding `bias [channels]`, which it owns (a parameter, zero-initialised).
    public init(channels: Int) { self.channels = channels }

    /// The input's shape; throws unless there is one input `[C]` or `[C, H, W]`.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, [1, 3].contains(inputs[0].rank), inputs[0][0] == channels, inputs[0].elementCount > 0
        else {
            throw .shapeMismatch(
                node: node, op: kind, inputs: inputs, expected: "one input [\(channels)] or [\(channels), H, W]")
        }
        return inputs[0]
    }

    /// `bias [C]`, zero-initialised.
    public var tensorSpecs: [TensorSpec] { [TensorSpec("bias", [channels], .parameter, .constant(0))] }

    /// `y[n, c, p] = x[n, c, p] + bias[c]`.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let x = c.inputs[0], bias = c.tensors[0], plane = c.outputShape.elementCount / channels
        for row in 0..<(c.outputCount / plane) {
            let b = bias[row % channels]
            for p in 0..<plane { c.output[row * plane + p] = x[row * plane + p] + b }
        }
    }

    /// Accumulates `dx += dy` and, with parameter gradients, `dbias[c] += Σ_{n, p} dy` (summed in Double).
    public func backward(_ c: NodeContext) {
        let dy = c.outputGrad, plane = c.outputShape.elementCount / channels
        if let dx = c.inputGrads[0] { for i in 0..<c.outputCount { dx[i] += dy[i] } }
        guard let db = c.tensorGrads[0] else { return }
        for k in 0..<channels {
            var sum = 0.0
            for n in 0..<c.batch {
                let row = dy + (n * channels + k) * plane
                for p in 0..<plane { sum += Double(row[p]) }
            }
            db[k] += Float(sum)
        }
    }
}

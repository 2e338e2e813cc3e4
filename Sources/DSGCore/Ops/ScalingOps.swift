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

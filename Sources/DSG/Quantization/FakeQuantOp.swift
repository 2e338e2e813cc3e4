import DSGCore

/// Quantize-dequantize of an activation, per tensor, with the range `[range[0], range[1]]` stored as a buffer
/// (so it is saved and loaded with the model). Backward is the straight-through estimator: the gradient
/// passes unchanged (Docs/DSG.md §10.4).
public struct FakeQuantOp: GraphOperator {
    /// The activation bit-width (2 to 8).
    public let bits: Int
    /// "FakeQuant", in error messages.
    public var kind: String { "FakeQuant" }

    /// A quantize-dequantize node of `bits` bits; its range starts at [0, 0] until calibrated or loaded.
    public init(bits: Int) { self.bits = bits }

    /// The input's shape: one input, element-wise.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input")
        }
        return inputs[0]
    }

    /// `range`: [low, high], a buffer (calibrated, not trained).
    public var tensorSpecs: [TensorSpec] { [TensorSpec("range", [2], .buffer, .constant(0))] }

    /// Quantize-dequantizes every element with the node's range (``UniformQuantizer``).
    public func forward(_ c: NodeContext) throws(GraphError) {
        let q = UniformQuantizer(bits: bits, low: c.tensors[0][0], high: c.tensors[0][1])
        for i in 0..<c.outputCount { c.output[i] = q(c.inputs[0][i]) }
    }

    /// Adds the output gradient unchanged to the input gradient (straight-through, no clipping mask).
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        for i in 0..<c.outputCount { dx[i] += c.outputGrad[i] }
    }
}

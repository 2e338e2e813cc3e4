/// Element-wise sum of two or more inputs of the same shape (residual connections).
public struct AddOp: GraphOperator {
    /// `"Add"`.
    public var kind: String { "Add" }
    /// An addition node; it owns no tensors.
    public init() {}

    /// The common shape; throws unless there are two or more inputs, all of one shape.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        try sameShape(inputs, atLeast: 2, node, kind)
    }

    /// `y = x₀ + x₁ + ...`.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let n = c.outputCount
        c.output.update(from: c.inputs[0], count: n)
        for input in c.inputs.dropFirst() { for i in 0..<n { c.output[i] += input[i] } }
    }

    /// Accumulates the output gradient unchanged into every input's gradient.
    public func backward(_ c: NodeContext) {
        for dx in c.inputGrads { if let dx { for i in 0..<c.outputCount { dx[i] += c.outputGrad[i] } } }
    }
}

/// Element-wise product of two inputs of the same shape.
public struct MultiplyOp: GraphOperator {
    /// `"Mul"` (ONNX's name).
    public var kind: String { "Mul" }
    /// A multiplication node; it owns no tensors.
    public init() {}

    /// The common shape; throws unless there are exactly two inputs of one shape.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 2 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "two inputs of one shape")
        }
        return try sameShape(inputs, atLeast: 2, node, kind)
    }

    /// `y = a * b`, element by element.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let a = c.inputs[0], b = c.inputs[1]
        for i in 0..<c.outputCount { c.output[i] = a[i] * b[i] }
    }

    /// Accumulates `da += dy * b` and `db += dy * a`.
    public func backward(_ c: NodeContext) {
        let a = c.inputs[0], b = c.inputs[1], dy = c.outputGrad
        if let da = c.inputGrads[0] { for i in 0..<c.outputCount { da[i] += dy[i] * b[i] } }
        if let db = c.inputGrads[1] { for i in 0..<c.outputCount { db[i] += dy[i] * a[i] } }
    }
}

private func sameShape(_ inputs: [Shape], atLeast k: Int, _ node: String, _ kind: String) throws(GraphError) -> Shape {
    guard inputs.count >= k, inputs.allSatisfy({ $0 == inputs[0] }) else {
        throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "at least \(k) inputs of one shape")
    }
    return inputs[0]
}

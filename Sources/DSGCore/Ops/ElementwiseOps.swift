/// Element-wise sum of two or more inputs of the same shape (residual connections).
public struct AddOp: GraphOperator {
    public var kind: String { "Add" }
    public init() {}

    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        try sameShape(inputs, atLeast: 2, node, kind)
    }

    public func forward(_ c: NodeContext) throws(GraphError) {
        let n = c.outputCount
        c.output.update(from: c.inputs[0], count: n)
        for input in c.inputs.dropFirst() { for i in 0..<n { c.output[i] += input[i] } }
    }

    public func backward(_ c: NodeContext) {
        for dx in c.inputGrads { if let dx { for i in 0..<c.outputCount { dx[i] += c.outputGrad[i] } } }
    }
}

/// Element-wise product of two inputs of the same shape.
public struct MultiplyOp: GraphOperator {
    public var kind: String { "Mul" }
    public init() {}

    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 2 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "two inputs of one shape")
        }
        return try sameShape(inputs, atLeast: 2, node, kind)
    }

    public func forward(_ c: NodeContext) throws(GraphError) {
        let a = c.inputs[0], b = c.inputs[1]
        for i in 0..<c.outputCount { c.output[i] = a[i] * b[i] }
    }

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

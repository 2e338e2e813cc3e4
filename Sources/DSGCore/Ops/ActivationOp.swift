import DSGKernels

/// An element-wise activation: ReLU, ReLU6, LeakyReLU or Tanh.
public struct ActivationOp: GraphOperator {
    public let activation: Activation
    public var kind: String {
        switch activation {
        case .relu: "ReLU"
        case .relu6: "ReLU6"
        case .leakyReLU: "LeakyReLU"
        case .tanh: "Tanh"
        }
    }

    public init(_ activation: Activation) { self.activation = activation }

    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input")
        }
        return inputs[0]
    }

    public func forward(_ c: NodeContext) throws(GraphError) {
        activation.forward(c.inputs[0], c.output, count: c.outputCount)
    }

    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        activation.backward(
            input: c.inputs[0], output: c.output, outputGrad: c.outputGrad, inputGrad: dx, count: c.outputCount)
    }
}

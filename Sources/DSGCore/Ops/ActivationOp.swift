import DSGKernels

/// An element-wise activation: ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, HardSigmoid, HardSwish or a clip.
public struct ActivationOp: GraphOperator {
    /// The function applied to every element.
    public let activation: Activation
    /// PyTorch's module name: `"ReLU"`, `"ReLU6"`, `"LeakyReLU"`, `"Tanh"`, `"Sigmoid"`, `"Hardsigmoid"`,
    /// `"Hardswish"` or `"Hardtanh"` (a clip).
    public var kind: String {
        switch activation {
        case .relu: "ReLU"
        case .relu6: "ReLU6"
        case .leakyReLU: "LeakyReLU"
        case .tanh: "Tanh"
        case .sigmoid: "Sigmoid"
        case .hardSigmoid: "Hardsigmoid"
        case .hardSwish: "Hardswish"
        case .clip: "Hardtanh"
        }
    }

    /// A node applying `activation` element-wise.
    public init(_ activation: Activation) { self.activation = activation }

    /// The input's shape; throws unless there is exactly one input.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input")
        }
        return inputs[0]
    }

    /// `y = f(x)` over the whole batch, split over the cores for large buffers.
    public func forward(_ c: NodeContext) throws(GraphError) {
        activation.forward(c.inputs[0], c.output, count: c.outputCount)
    }

    /// Accumulates `dx += dy * f'(x)` into the input gradient (tanh's and sigmoid's derivatives read the output).
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        activation.backward(
            input: c.inputs[0], output: c.output, outputGrad: c.outputGrad, inputGrad: dx, count: c.outputCount)
    }
}

import DSGKernels

/// 2-D convolution (PyTorch `Conv2d`): tensors `weight [O, C / groups, KH, KW]` and optionally `bias [O]`.
public struct Conv2dOp: GraphOperator {
    public let geometry: ConvGeometry
    public let hasBias: Bool
    public var kind: String { "Conv2d" }

    public init(geometry: ConvGeometry, bias: Bool) {
        self.geometry = geometry
        self.hasBias = bias
    }

    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        let g = geometry
        guard inputs.count == 1, inputs[0] == [g.inChannels, g.inputH, g.inputW] else {
            throw .shapeMismatch(
                node: node, op: kind, inputs: inputs, expected: "one input [\(g.inChannels), \(g.inputH), \(g.inputW)]")
        }
        return [g.outChannels, g.outputH, g.outputW]
    }

    public var tensorSpecs: [TensorSpec] {
        let g = geometry
        // PyTorch's default: Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
        let bound = 1 / Float(g.groupPatchSize).squareRoot()
        let weight = TensorSpec(
            "weight", [g.outChannels, g.groupInChannels, g.kernelH, g.kernelW], .parameter, .uniform(bound: bound))
        return hasBias ? [weight, TensorSpec("bias", [g.outChannels], .parameter, .uniform(bound: bound))] : [weight]
    }

    public func workspaceCount(batch: Int) -> Int { Conv2D.workspaceCount(geometry, batch: batch) }

    public func forward(_ c: NodeContext) throws(GraphError) {
        Conv2D.forward(
            geometry, batch: c.batch, input: c.inputs[0], weight: c.tensors[0],
            bias: hasBias ? UnsafePointer(c.tensors[1]) : nil, output: c.output, workspace: c.workspace)
    }

    public func backward(_ c: NodeContext) {
        if let dx = c.inputGrads[0] {
            Conv2D.backwardData(
                geometry, batch: c.batch, outputGrad: c.outputGrad, weight: c.tensors[0], inputGrad: dx,
                workspace: c.workspace)
        }
        if let dw = c.tensorGrads[0] {
            Conv2D.backwardWeight(
                geometry, batch: c.batch, input: c.inputs[0], outputGrad: c.outputGrad, weightGrad: dw,
                biasGrad: hasBias ? c.tensorGrads[1] : nil, workspace: c.workspace)
        }
    }
}

import DSGKernels

/// 2-D convolution (PyTorch `Conv2d`): tensors `weight [O, C / groups, KH, KW]` and optionally `bias [O]`.
public struct Conv2dOp: GraphOperator {
    /// Channels, kernel, stride, padding, dilation, groups and the input and output sizes, validated when built.
    public let geometry: ConvGeometry
    /// Whether the node owns a `bias [O]` (convolutions followed by BatchNorm have none).
    public let hasBias: Bool
    /// `"Conv2d"`.
    public var kind: String { "Conv2d" }

    /// A convolution of `geometry`, with a bias when `bias` is true; the geometry fixes the input size too.
    public init(geometry: ConvGeometry, bias: Bool) {
        self.geometry = geometry
        self.hasBias = bias
    }

    /// `[O, OH, OW]`; throws ``GraphError/shapeMismatch(node:op:inputs:expected:)`` unless there is one input of
    /// exactly `[C, H, W]` of the geometry.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        let g = geometry
        guard inputs.count == 1, inputs[0] == [g.inChannels, g.inputH, g.inputW] else {
            throw .shapeMismatch(
                node: node, op: kind, inputs: inputs, expected: "one input [\(g.inChannels), \(g.inputH), \(g.inputW)]")
        }
        return [g.outChannels, g.outputH, g.outputW]
    }

    /// `weight [O, C / groups, KH, KW]` and, with a bias, `bias [O]`, both `U(-1/√fanIn, 1/√fanIn)` with
    /// `fanIn = C / groups * KH * KW` (PyTorch's default).
    public var tensorSpecs: [TensorSpec] {
        let g = geometry
        // PyTorch's default: Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
        let bound = 1 / Float(g.groupPatchSize).squareRoot()
        let weight = TensorSpec(
            "weight", [g.outChannels, g.groupInChannels, g.kernelH, g.kernelW], .parameter, .uniform(bound: bound))
        return hasBias ? [weight, TensorSpec("bias", [g.outChannels], .parameter, .uniform(bound: bound))] : [weight]
    }

    /// The patch matrices (and transposed weights or private gradients) ``Conv2D`` needs for this batch.
    public func workspaceCount(batch: Int) -> Int { Conv2D.workspaceCount(geometry, batch: batch) }

    /// `output = conv(input, weight) + bias` by im2col and SGEMM, the batch split over the cores.
    public func forward(_ c: NodeContext) throws(GraphError) {
        Conv2D.forward(
            geometry, batch: c.batch, input: c.inputs[0], weight: c.tensors[0],
            bias: hasBias ? UnsafePointer(c.tensors[1]) : nil, output: c.output, workspace: c.workspace)
    }

    /// Accumulates the input gradient (when asked for) and the weight and bias gradients (when parameter
    /// gradients are on).
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

/// What DSG reads from one BatchNorm layer: the value that feeds it and its running statistics.
public struct BatchNormLayer: Sendable {
    /// The BatchNorm node's name, e.g. `stage1.block0.bn1`.
    public let name: String
    /// The value normalised by the layer (the preceding convolution's output), `[C, H, W]` per sample.
    public let input: ValueID
    /// The layer's channel count `C`: the running statistics are `[C]`.
    public let channels: Int
    /// Indices into ``Model/tensors`` of `running_mean` and `running_var`.
    public let runningMeanIndex: Int
    /// The index of `running_var` in ``Model/tensors``.
    public let runningVarIndex: Int
    /// The layer's `epsilon`, added to the variance before the square root when it normalises.
    public let epsilon: Float
}

extension Model {
    /// Every BatchNorm layer in graph order (PyTorch's registration order for the builders here).
    public var batchNormLayers: [BatchNormLayer] {
        nodes.compactMap { node in
            guard let op = node.op as? BatchNormOp else { return nil }
            return BatchNormLayer(
                name: node.name, input: node.inputs[0], channels: op.channels,
                runningMeanIndex: node.tensorIndices[op.runningMeanIndex],
                runningVarIndex: node.tensorIndices[op.runningVarIndex], epsilon: op.epsilon)
        }
    }

    /// The running mean and variance of a BatchNorm layer.
    public func runningStatistics(of layer: BatchNormLayer) -> (mean: Tensor, variance: Tensor) {
        (tensors[layer.runningMeanIndex].tensor, tensors[layer.runningVarIndex].tensor)
    }
}

import DSGKernels

/// Batch normalization over channels (PyTorch `BatchNorm2d`, and `BatchNorm1d` on `[C]` features).
///
/// Tensors: `weight [C]`, `bias [C]` (absent when `affine` is false), buffers `running_mean [C]`,
/// `running_var [C]`. `momentum` is PyTorch's: `running = (1 - momentum) * running + momentum * batch`.
public struct BatchNormOp: GraphOperator {
    /// The number of channels `C`, the first per-sample axis of the input.
    public let channels: Int
    /// Added to the variance before the square root; PyTorch's default 1e-5.
    public let epsilon: Float
    /// How far a training pass moves the running statistics towards the batch's; PyTorch's default 0.1.
    public let momentum: Float
    /// Whether the layer has a learned `weight` and `bias` after normalising (PyTorch's `affine`).
    public let affine: Bool
    /// `"BatchNorm"`.
    public var kind: String { "BatchNorm" }

    /// A BatchNorm over `channels` channels with PyTorch's defaults.
    public init(channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) {
        (self.channels, self.epsilon, self.momentum, self.affine) = (channels, epsilon, momentum, affine)
    }

    /// The input's shape; throws unless there is one input whose first axis is `channels` (`[C]` or `[C, H, W]`).
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0].rank >= 1, inputs[0][0] == channels else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input [\(channels), ...]")
        }
        return inputs[0]
    }

    /// `weight` (1) and `bias` (0) when affine, then the buffers `running_mean` (0) and `running_var` (1), all `[C]`,
    /// in PyTorch's `state_dict` order (PyTorch's `num_batches_tracked` is not kept).
    public var tensorSpecs: [TensorSpec] {
        let stats = [
            TensorSpec("running_mean", [channels], .buffer, .constant(0)),
            TensorSpec("running_var", [channels], .buffer, .constant(1)),
        ]
        guard affine else { return stats }
        return [
            TensorSpec("weight", [channels], .parameter, .constant(1)),
            TensorSpec("bias", [channels], .parameter, .constant(0)),
        ] + stats
    }

    /// Indices of the running statistics in ``tensorSpecs``.
    public var runningMeanIndex: Int { affine ? 2 : 0 }
    /// The index of `running_var` in ``tensorSpecs``: 3 when affine, else 1 (`running_mean` is just before it).
    public var runningVarIndex: Int { affine ? 3 : 1 }

    /// Saved per channel: the mean and inverse standard deviation used by the last forward.
    public func savedCount(batch: Int) -> Int { 2 * channels }
    /// Two Doubles per channel: the batch sums of a training pass.
    public func workspaceCount(batch: Int) -> Int { 4 * channels }

    private func sizes(_ c: NodeContext) -> BatchNorm.Sizes {
        BatchNorm.Sizes(batch: c.batch, channels: channels, plane: c.outputShape.elementCount / channels)
    }

    /// Training mode normalises with the batch statistics and moves the running ones; evaluation mode uses the
    /// running statistics. Either way the mean and inverse deviation used are saved for ``backward(_:)``.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let gamma = affine ? UnsafePointer(c.tensors[0]) : nil, beta = affine ? UnsafePointer(c.tensors[1]) : nil
        let mean = c.saved, invStd = c.saved + channels
        if c.training {
            c.withDoubleWorkspace(2 * channels) {
                BatchNorm.forwardTraining(
                    sizes(c), input: c.inputs[0], gamma: gamma, beta: beta, epsilon: epsilon, momentum: momentum,
                    runningMean: c.tensors[runningMeanIndex], runningVar: c.tensors[runningVarIndex],
                    savedMean: mean, savedInvStd: invStd, output: c.output, scratch: $0, sharing: c.sharing)
            }
        } else {
            for ch in 0..<channels {
                mean[ch] = c.tensors[runningMeanIndex][ch]
                invStd[ch] = 1 / (c.tensors[runningVarIndex][ch] + epsilon).squareRoot()
            }
            BatchNorm.forwardEvaluation(
                sizes(c), input: c.inputs[0], gamma: gamma, beta: beta, epsilon: epsilon,
                runningMean: c.tensors[runningMeanIndex], runningVar: c.tensors[runningVarIndex], output: c.output)
        }
    }

    /// Accumulates the input gradient (through the batch statistics in training mode, the constant running ones in
    /// evaluation mode) and, when affine, the `weight` and `bias` gradients.
    public func backward(_ c: NodeContext) {
        c.withDoubleWorkspace(2 * channels) {
            BatchNorm.backward(
                sizes(c), training: c.training, input: c.inputs[0], outputGrad: c.outputGrad,
                gamma: affine ? UnsafePointer(c.tensors[0]) : nil, mean: c.saved, invStd: c.saved + channels,
                inputGrad: c.inputGrads[0], gammaGrad: affine ? c.tensorGrads[0] : nil,
                betaGrad: affine ? c.tensorGrads[1] : nil, scratch: $0, sharing: c.sharing)
        }
    }
}

import DSGKernels

/// Class-conditional batch normalization (the generator of Docs/DSG.md §10.1): an affine-free BatchNorm over the
/// first input `[C, ...]`, then a per-sample scale and shift looked up by the sample's label (the second input,
/// shape `[]`, a class index stored as a float): `y = weight[label, c] · x̂ + bias[label, c]`.
///
/// Tensors: `weight [classes, C]` (initialised to 1), `bias [classes, C]` (0), buffers `running_mean [C]`,
/// `running_var [C]`. Labels receive no gradient.
public struct ConditionalBatchNormOp: GraphOperator {
    /// The number of channels `C` of the first input, and the number of classes the label indexes.
    public let channels: Int, classes: Int
    /// Added to the variance before the square root, and the running statistics' momentum, as in ``BatchNormOp``.
    public let epsilon: Float, momentum: Float
    /// `"ConditionalBatchNorm"`.
    public var kind: String { "ConditionalBatchNorm" }

    /// A conditional BatchNorm over `channels` channels with one scale and shift per class; PyTorch's defaults.
    public init(channels: Int, classes: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        (self.channels, self.classes, self.epsilon, self.momentum) = (channels, classes, epsilon, momentum)
    }

    /// The first input's shape; throws unless there are two inputs, `[C, ...]` and a one-element label.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 2, inputs[0].rank >= 1, inputs[0][0] == channels, inputs[1].elementCount == 1 else {
            throw .shapeMismatch(
                node: node, op: kind, inputs: inputs, expected: "[\(channels), ...] and one label per sample (shape [])"
            )
        }
        return inputs[0]
    }

    /// `weight [classes, C]` (1), `bias [classes, C]` (0), then the buffers `running_mean [C]` (0) and
    /// `running_var [C]` (1).
    public var tensorSpecs: [TensorSpec] {
        [
            TensorSpec("weight", [classes, channels], .parameter, .constant(1)),
            TensorSpec("bias", [classes, channels], .parameter, .constant(0)),
            TensorSpec("running_mean", [channels], .buffer, .constant(0)),
            TensorSpec("running_var", [channels], .buffer, .constant(1)),
        ]
    }

    /// Saved: the mean and inverse standard deviation of the last forward, per channel.
    public func savedCount(batch: Int) -> Int { 2 * channels }
    /// Two Doubles per channel: the batch sums of a training pass and of a backward pass.
    public func workspaceCount(batch: Int) -> Int { 4 * channels }

    private func sizes(_ c: NodeContext) -> BatchNorm.Sizes {
        BatchNorm.Sizes(batch: c.batch, channels: channels, plane: c.outputShape.elementCount / channels)
    }

    /// Normalises as an affine-free BatchNorm (batch or running statistics), then applies each sample's class row of
    /// `weight` and `bias`. Throws ``GraphError/labelOutOfRange(node:label:classes:)`` for a label that is not an
    /// integer in `0..<classes`, before any statistic moves.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let mean = c.saved, invStd = c.saved + channels
        for n in 0..<c.batch {
            let label = c.inputs[1][n]
            guard label >= 0, label < Float(classes), label.rounded() == label else {
                throw .labelOutOfRange(node: c.name, label: label, classes: classes)
            }
        }
        if c.training {
            c.withDoubleWorkspace(2 * channels) {
                BatchNorm.forwardTraining(
                    sizes(c), input: c.inputs[0], gamma: nil, beta: nil, epsilon: epsilon, momentum: momentum,
                    runningMean: c.tensors[2], runningVar: c.tensors[3], savedMean: mean, savedInvStd: invStd,
                    output: c.output, scratch: $0, sharing: c.sharing)
            }
        } else {
            for ch in 0..<channels {
                mean[ch] = c.tensors[2][ch]
                invStd[ch] = 1 / (c.tensors[3][ch] + epsilon).squareRoot()
            }
            BatchNorm.forwardEvaluation(
                sizes(c), input: c.inputs[0], gamma: nil, beta: nil, epsilon: epsilon,
                runningMean: c.tensors[2], runningVar: c.tensors[3], output: c.output)
        }
        let plane = c.outputShape.elementCount / channels
        for n in 0..<c.batch {
            let row = Int(c.inputs[1][n]) * channels
            for ch in 0..<channels {
                let (w, b) = (c.tensors[0][row + ch], c.tensors[1][row + ch])
                let out = c.output + (n * channels + ch) * plane
                for k in 0..<plane { out[k] = w * out[k] + b }
            }
        }
    }

    /// With `g = dy · weight[label]` per sample: the affine-free BatchNorm backward of `g`, i.e. in training
    /// mode `dx = invStd (g − mean(g) − x̂ mean(g x̂))` over samples and positions (of the whole batch when the
    /// executor holds a share of one), in evaluation mode `dx = invStd g`; `dweight[label] += Σ dy x̂`,
    /// `dbias[label] += Σ dy`.
    public func backward(_ c: NodeContext) {
        let mean = c.saved, invStd = c.saved + channels
        let plane = c.outputShape.elementCount / channels
        let count = Double((c.sharing?.samples ?? c.batch) * plane)
        c.withDoubleWorkspace(2 * channels) { sumG in
            let sumGXhat = sumG + channels
            for ch in 0..<channels {
                let (mu, inv) = (mean[ch], invStd[ch])
                (sumG[ch], sumGXhat[ch]) = (0, 0)
                for n in 0..<c.batch {
                    let row = Int(c.inputs[1][n]) * channels + ch, offset = (n * channels + ch) * plane
                    let x = c.inputs[0] + offset, dy = c.outputGrad + offset
                    var sumDy = 0.0, sumDyXhat = 0.0
                    for k in 0..<plane {
                        sumDy += Double(dy[k])
                        sumDyXhat += Double(dy[k]) * Double((x[k] - mu) * inv)
                    }
                    c.tensorGrads[0]?[row] += Float(sumDyXhat)
                    c.tensorGrads[1]?[row] += Float(sumDy)
                    let w = Double(c.tensors[0][row])
                    sumG[ch] += w * sumDy
                    sumGXhat[ch] += w * sumDyXhat
                }
            }
            guard let dx = c.inputGrads[0] else { return }
            if c.training { c.sharing?.sum(UnsafeMutableBufferPointer(start: sumG, count: 2 * channels)) }
            for ch in 0..<channels {
                let (mu, inv) = (mean[ch], invStd[ch])
                let (meanG, meanGXhat) = c.training ? (Float(sumG[ch] / count), Float(sumGXhat[ch] / count)) : (0, 0)
                for n in 0..<c.batch {
                    let w = c.tensors[0][Int(c.inputs[1][n]) * channels + ch], offset = (n * channels + ch) * plane
                    let x = c.inputs[0] + offset, dy = c.outputGrad + offset, out = dx + offset
                    for k in 0..<plane { out[k] += inv * (w * dy[k] - meanG - (x[k] - mu) * inv * meanGXhat) }
                }
            }
        }
    }
}

extension Losses {
    /// Mean softmax cross-entropy of an executor's output `output` (`[N, K]` logits, after a forward pass)
    /// against `labels`, with its gradient **added** into that output's gradient, ready for `backward()`: the
    /// tensor-level form of ``softmaxCrossEntropy(logits:labels:batch:classes:gradient:scale:)`` for training
    /// loops that hold no buffers of their own. Call `zeroGradients()` first.
    public static func softmaxCrossEntropy(
        _ executor: GraphExecutor, labels: [Int32], output: Int = 0, scale: Float = 1
    ) throws -> Float {
        let value = executor.model.outputs[output]
        let shape = executor.model.shape(of: value)
        guard shape.rank == 1 else {
            throw GraphError.shapeMismatch(
                node: "output \(output)", op: "SoftmaxCrossEntropy", inputs: [shape], expected: "[classes] logits")
        }
        guard labels.count == executor.batchSize else {
            throw GraphError.tensorShape(name: "labels", expected: [executor.batchSize], got: Shape([labels.count]))
        }
        let gradient = executor.gradient(of: value)
        return try executor.withValue(value) { logits in
            try softmaxCrossEntropy(
                logits: logits.baseAddress!, labels: labels, batch: executor.batchSize, classes: shape[0],
                gradient: gradient.baseAddress!, scale: scale)
        }
    }
}

/// Runs a model in evaluation mode over a set of samples, one batch at a time: the one batch loop behind
/// evaluation, calibration and the diversity metrics.
///
/// It keeps an inference-only executor for full batches and one for a smaller last batch, made on first use
/// and reused by every later call, so a caller that measures several sample sets pays for set-up once.
public final class BatchedInference {
    /// The model run, in evaluation mode; its weights are read at every pass.
    public let model: Model
    /// The largest batch; the last batch of a set holds the remainder.
    public let batchSize: Int
    /// Whether only the model's inputs and outputs are read after each batch: the executors then reuse buffers
    /// (``GraphExecutor/init(model:batchSize:backward:outputsOnly:)``) and need a fraction of the memory.
    public let outputsOnly: Bool
    private var executors: [Int: GraphExecutor] = [:]

    /// Runs `model` in batches of at most `batchSize`; executors are made on first use. With `outputsOnly`, only
    /// the model's outputs may be read in ``forEachBatch(of:_:)``. Throws ``GraphError/invalidBatchSize(_:)`` for
    /// a batch below 1.
    public init(model: Model, batchSize: Int, outputsOnly: Bool = false) throws(GraphError) {
        guard batchSize > 0 else { throw .invalidBatchSize(batchSize) }
        (self.model, self.batchSize, self.outputsOnly) = (model, batchSize, outputsOnly)
    }

    /// Runs `samples` (`[N, shape...]`, the model's single input) batch by batch, in order, and after each
    /// batch calls `body` with the executor (every value of the pass is readable, or only the outputs with
    /// `outputsOnly`) and the samples it holds.
    public func forEachBatch(of samples: Tensor, _ body: (GraphExecutor, Range<Int>) throws -> Void) throws {
        guard model.inputs.count == 1 else { throw GraphError.inputCount(expected: model.inputs.count, got: 1) }
        let count = samples.shape.rank > 0 ? samples.shape[0] : 0
        var start = 0
        while start < count {
            let range = start..<min(start + batchSize, count)
            let executor = try executor(for: range.count)
            try executor.setInput(0, from: samples, samples: range)
            try executor.run(training: false)
            try body(executor, range)
            start = range.upperBound
        }
    }

    private func executor(for size: Int) throws(GraphError) -> GraphExecutor {
        if let executor = executors[size] { return executor }
        let executor = try GraphExecutor(model: model, batchSize: size, backward: false, outputsOnly: outputsOnly)
        executors[size] = executor
        return executor
    }
}

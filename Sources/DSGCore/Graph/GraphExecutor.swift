/// Runs a ``Model`` on batches of a fixed size, forward and backward, without allocating after set-up.
///
/// Every value of the graph gets one buffer (or, forward only with `outputsOnly`, a slot it shares with values
/// that are dead by the time it is written), and so does its gradient; these, each node's saved state and one
/// shared workspace are allocated in `init` and reused by every pass. A pass reads the model's parameters in
/// place, so an optimizer's update is seen by the next forward.
///
/// Backward seeds: after ``forward(_:training:)``, call ``zeroGradients()``, add the loss gradient into
/// ``gradient(of:)`` of the output and of any intermediate value (DSG's BatchNorm losses inject gradients at
/// each BatchNorm input), then call ``backward(parameterGradients:)``.
public final class GraphExecutor {
    /// The model run; its parameters are read in place, so updates between passes are seen. Its graph must not
    /// change after the executor is made (the buffers are planned from it).
    public let model: Model
    /// Samples per pass; every input tensor must be `[batchSize, shape...]`.
    public let batchSize: Int
    /// Whether ``backward(parameterGradients:)`` computes the gradient of each graph input.
    public var inputsRequireGradient: [Bool]

    private let values: [UnsafeMutablePointer<Float>]
    private let gradients: [UnsafeMutablePointer<Float>]
    /// Gradient buffer of each model tensor that is a parameter; nil for buffers. They lie in one block, each at
    /// a multiple of 16 floats, so that a data-parallel run sums them all in one call.
    private let tensorGradients: [UnsafeMutablePointer<Float>?]
    /// That block (empty without backward).
    package let parameterGradients: UnsafeMutableBufferPointer<Float>
    private let contexts: [NodeContext]
    private var needsGradient: [Bool]
    private var allocations: [UnsafeMutableRawPointer] = []
    private var lastForwardWasTraining = false
    /// With `outputsOnly`, the values whose buffers no later value overwrites (inputs and outputs); nil otherwise.
    private let readable: Set<Int>?

    /// The bytes of every buffer the executor allocated (values, gradients, saved state, workspace): what one
    /// more executor of this model and batch size costs.
    public let allocatedBytes: Int

    /// Whether this executor can run ``backward(parameterGradients:)``; inference-only executors skip the
    /// gradient buffers (as much memory again as the values).
    public let supportsBackward: Bool

    /// Plans and allocates every buffer for `batchSize` samples; with `backward: false` no gradient buffer is made
    /// (for evaluation and calibration). With `outputsOnly: true` (forward only) a value's buffer is handed to a
    /// later value once its last reader has run, so a pass needs a fraction of the memory, but only the graph's
    /// inputs and outputs can be read after it (for evaluation, which reads the logits alone). Throws
    /// ``GraphError/invalidBatchSize(_:)`` for a batch below 1.
    public init(model: Model, batchSize: Int, backward: Bool = true, outputsOnly: Bool = false) throws(GraphError) {
        guard batchSize > 0 else { throw .invalidBatchSize(batchSize) }
        precondition(
            !(backward && outputsOnly), "GraphExecutor: backward needs every value; outputsOnly is forward only.")
        self.model = model
        self.batchSize = batchSize
        supportsBackward = backward
        readable = outputsOnly ? Self.inputsAndOutputs(model) : nil
        inputsRequireGradient = Array(repeating: false, count: model.inputs.count)

        var allocations: [UnsafeMutableRawPointer] = [], bytes = 0
        func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
            bytes += 4 * max(count, 1)
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            allocations.append(UnsafeMutableRawPointer(p))
            return p
        }
        let counts = model.valueShapes.map { batchSize * $0.elementCount }
        let values: [UnsafeMutablePointer<Float>]
        if outputsOnly {
            let (slotOfValue, slotSizes) = Self.sharedSlots(model, counts: counts)
            let slots = slotSizes.map(floats)
            values = slotOfValue.map { slots[$0] }
        } else {
            values = counts.map(floats)
        }
        self.values = values
        // Without backward every gradient shares one buffer of one float, which nothing reads.
        let gradients = backward ? counts.map(floats) : Array(repeating: floats(1), count: counts.count)
        self.gradients = gradients
        let trained = model.tensors.map { backward && $0.role == .parameter }
        var offsets: [Int] = [], total = 0
        for (tensor, trains) in zip(model.tensors, trained) {
            offsets.append(total)
            if trains { total += (tensor.tensor.elementCount + 15) / 16 * 16 }
        }
        let block = floats(total)
        parameterGradients = UnsafeMutableBufferPointer(start: block, count: total)
        tensorGradients = trained.indices.map { trained[$0] ? block + offsets[$0] : nil }
        let workspace = floats(model.nodes.map { $0.op.workspaceCount(batch: batchSize) }.max() ?? 0)
        contexts = model.nodes.map { node in
            let indexCount = max(node.op.savedIndexCount(batch: batchSize), 1)
            let indices = UnsafeMutablePointer<Int32>.allocate(capacity: indexCount)
            indices.initialize(repeating: 0, count: indexCount)
            allocations.append(UnsafeMutableRawPointer(indices))
            bytes += 4 * indexCount
            return NodeContext(
                name: node.name, batch: batchSize,
                inputShapes: node.inputs.map { model.valueShapes[$0.index] },
                outputShape: model.valueShapes[node.output.index],
                inputs: node.inputs.map { values[$0.index] }, output: values[node.output.index],
                tensorCount: node.tensorIndices.count, outputGrad: gradients[node.output.index],
                saved: floats(node.op.savedCount(batch: batchSize)), savedIndices: indices,
                workspace: workspace)
        }
        needsGradient = Array(repeating: false, count: counts.count)
        self.allocations = allocations
        allocatedBytes = bytes
    }

    deinit { for p in allocations { p.deallocate() } }

    // MARK: - Forward

    /// Makes this executor one share of a batch of `batch` samples spread over `group` (its own `batchSize`
    /// samples being this process's share): from now on training-mode BatchNorm normalises with, and
    /// backpropagates through, the statistics of the whole batch, as one executor holding it all would
    /// (synchronised BatchNorm). Every process of the group must do the same with its share.
    public func shareBatch(of batch: Int, over group: DataParallelGroup) {
        let sharing = group.sharing(ofBatch: batch)
        for context in contexts { context.sharing = sharing }
    }

    /// Runs the graph on one batch. `inputs` are `[batch, shape...]` tensors, one per graph input.
    /// Training mode uses batch statistics in BatchNorm (and updates its running statistics).
    public func forward(_ inputs: [Tensor], training: Bool) throws(GraphError) {
        guard inputs.count == model.inputs.count else {
            throw .inputCount(expected: model.inputs.count, got: inputs.count)
        }
        for (i, tensor) in inputs.enumerated() { try setInput(i, from: tensor) }
        try run(training: training)
    }

    /// Copies samples `range` of `tensor` (`[N, shape...]`, all of it when `range` is nil) into graph input
    /// `input`; the range must hold exactly one batch. The tensor-level way to feed a pass run by ``run(training:)``.
    public func setInput(_ input: Int = 0, from tensor: Tensor, samples range: Range<Int>? = nil) throws(GraphError) {
        let sample = model.inputs[input].shape
        let samples = tensor.shape.rank == sample.rank + 1 ? tensor.shape[0] : 0
        guard tensor.shape.isBatch(of: sample, size: range == nil ? batchSize : samples) else {
            throw .tensorShape(name: model.inputs[input].name, expected: sample.batched(batchSize), got: tensor.shape)
        }
        let range = range ?? 0..<batchSize
        guard range.count == batchSize, range.lowerBound >= 0, range.upperBound <= samples else {
            throw .sampleRange(input: model.inputs[input].name, range: range, samples: samples, batchSize: batchSize)
        }
        let size = sample.elementCount
        values[input].update(from: tensor.pointer + range.lowerBound * size, count: batchSize * size)
    }

    /// Runs the graph on the inputs already set (``setInput(_:from:samples:)``, or ``withInput(_:_:)`` in place).
    public func run(training: Bool) throws(GraphError) {
        // Naming a non-finite node reruns an outputsOnly pass, which must not update BatchNorm's statistics twice.
        precondition(!training || readable == nil, "GraphExecutor: an outputsOnly executor runs in evaluation mode.")
        for (i, input) in model.inputs.enumerated() where !isFinite(values[i], batchSize * input.shape.elementCount) {
            throw .nonFinite(node: input.name, op: "Input", shape: input.shape.batched(batchSize))
        }
        bindTensors(training: training)
        for (node, context) in zip(model.nodes, contexts) {
            try node.op.forward(context)
        }
        lastForwardWasTraining = training
        for output in model.outputs where !isFinite(values[output.index], count(output)) {
            throw firstNonFiniteNode()
        }
    }

    /// Writes directly into graph input `i`'s buffer (`[batch, shape...]`), avoiding a tensor copy: for the
    /// optimised loops that already hold the batch in a buffer (``setInput(_:from:samples:)`` otherwise).
    public func withInput<R>(_ i: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: values[i], count: count(ValueID(index: i))))
    }

    // MARK: - Reading values

    /// A copy of `value` for the whole batch, `[batch, shape...]`.
    public func value(_ value: ValueID) -> Tensor {
        checkReadable(value)
        return Tensor(
            shape: model.shape(of: value).batched(batchSize),
            scalars: Array(UnsafeBufferPointer(start: values[value.index], count: count(value))))
    }

    /// A copy of model output `i`.
    public func output(_ i: Int = 0) -> Tensor { value(model.outputs[i]) }

    /// Zero-copy read access to a value's buffer.
    public func withValue<R>(_ value: ValueID, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        checkReadable(value)
        return try body(UnsafeBufferPointer(start: values[value.index], count: count(value)))
    }

    // MARK: - Backward

    /// Sets every value and parameter gradient to zero.
    public func zeroGradients() {
        precondition(supportsBackward, "GraphExecutor: this executor was made with backward: false.")
        for (i, g) in gradients.enumerated() { g.update(repeating: 0, count: count(ValueID(index: i))) }
        for (i, g) in tensorGradients.enumerated() {
            g?.update(repeating: 0, count: model.tensors[i].tensor.elementCount)
        }
    }

    /// The gradient buffer of `value` (`[batch, shape...]`): add loss gradients here before
    /// ``backward(parameterGradients:)``.
    public func gradient(of value: ValueID) -> UnsafeMutableBufferPointer<Float> {
        precondition(supportsBackward, "GraphExecutor: this executor was made with backward: false.")
        return UnsafeMutableBufferPointer(start: gradients[value.index], count: count(value))
    }

    /// Propagates the seeded gradients back through the graph, accumulating into input gradients (where
    /// ``inputsRequireGradient`` asks) and, when `parameterGradients` is true, into every parameter's gradient.
    /// With `parameterGradients: false` only the work needed for input gradients is done (as in DSG, which
    /// optimises images, not weights).
    public func backward(parameterGradients: Bool = true) {
        precondition(supportsBackward, "GraphExecutor: this executor was made with backward: false.")
        planGradients(parameterGradients: parameterGradients)
        for index in model.nodes.indices.reversed() where needsGradient[model.nodes[index].output.index] {
            let node = model.nodes[index], context = contexts[index]
            context.training = lastForwardWasTraining
            for (k, input) in node.inputs.enumerated() {
                context.inputGrads[k] = needsGradient[input.index] ? gradients[input.index] : nil
            }
            for (k, t) in node.tensorIndices.enumerated() {
                context.tensorGrads[k] = parameterGradients ? tensorGradients[t] : nil
            }
            node.op.backward(context)
        }
    }

    /// A copy of the accumulated gradient of the parameter called `name`.
    public func parameterGradient(named name: String) throws(GraphError) -> Tensor {
        guard let i = model.tensors.firstIndex(where: { $0.name == name }) else { throw .unknownTensor(name) }
        guard let g = tensorGradients[i] else { throw .unknownTensor(name + " (a buffer has no gradient)") }
        let shape = model.tensors[i].tensor.shape
        return Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: g, count: shape.elementCount)))
    }

    /// The gradient buffer of model tensor `i`, nil for buffers. For optimizers.
    package func tensorGradient(_ i: Int) -> UnsafeMutablePointer<Float>? { tensorGradients[i] }

    // MARK: - Helpers

    private func count(_ value: ValueID) -> Int { batchSize * model.valueShapes[value.index].elementCount }

    private func checkReadable(_ value: ValueID) {
        precondition(
            readable?.contains(value.index) ?? true,
            "GraphExecutor: value \(value.index) was overwritten; an outputsOnly executor keeps only inputs and outputs."
        )
    }

    /// The values an `outputsOnly` executor keeps readable: the graph's inputs and outputs.
    private static func inputsAndOutputs(_ model: Model) -> Set<Int> {
        Set(model.inputs.indices).union(model.outputs.map(\.index))
    }

    /// The buffer plan of an `outputsOnly` executor: walking the nodes in order, each output takes a free slot
    /// (the smallest that fits, else the largest free one, grown) and a value's slot is freed once its last
    /// reader has run. An output never shares a slot with its own inputs; inputs and outputs get slots of their
    /// own. Returns each value's slot and each slot's size in floats.
    package static func sharedSlots(_ model: Model, counts: [Int]) -> (slotOfValue: [Int], slotSizes: [Int]) {
        var lastReader = Array(repeating: -1, count: counts.count)
        for (k, node) in model.nodes.enumerated() { for input in node.inputs { lastReader[input.index] = k } }
        let kept = inputsAndOutputs(model)
        var slotOfValue = Array(repeating: 0, count: counts.count), sizes: [Int] = [], free: [Int] = []
        func newSlot(_ size: Int) -> Int {
            sizes.append(size)
            return sizes.count - 1
        }
        for i in model.inputs.indices { slotOfValue[i] = newSlot(counts[i]) }
        for (k, node) in model.nodes.enumerated() {
            let out = node.output.index, need = counts[out]
            if kept.contains(out) || free.isEmpty {
                slotOfValue[out] = newSlot(need)
            } else {
                let fitting = free.indices.filter { sizes[free[$0]] >= need }
                let pick =
                    fitting.min { sizes[free[$0]] < sizes[free[$1]] }
                    ?? free.indices.max { sizes[free[$0]] < sizes[free[$1]] }!
                let slot = free.remove(at: pick)
                sizes[slot] = max(sizes[slot], need)
                slotOfValue[out] = slot
            }
            for input in Set(node.inputs.map(\.index)) where lastReader[input] == k && !kept.contains(input) {
                free.append(slotOfValue[input])
            }
            if lastReader[out] < 0 && !kept.contains(out) { free.append(slotOfValue[out]) }
        }
        return (slotOfValue, sizes)
    }

    /// Points every node at its tensors' current storage (copy-on-write may have moved it since the last pass).
    private func bindTensors(training: Bool) {
        for (node, context) in zip(model.nodes, contexts) {
            context.training = training
            for (k, t) in node.tensorIndices.enumerated() {
                context.tensors[k] = model.mutablePointer(tensor: t)
            }
        }
    }

    /// Marks the values whose gradient backward must compute.
    private func planGradients(parameterGradients: Bool) {
        for i in model.inputs.indices { needsGradient[i] = inputsRequireGradient[i] }
        for node in model.nodes {
            let ownsParameters = parameterGradients && node.tensorIndices.contains { tensorGradients[$0] != nil }
            needsGradient[node.output.index] = ownsParameters || node.inputs.contains { needsGradient[$0.index] }
        }
    }

    private func isFinite(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
        var bad = false
        for i in 0..<n where !p[i].isFinite {
            bad = true
            break
        }
        return !bad
    }

    /// The first node whose output holds a NaN or infinity. An `outputsOnly` executor has overwritten most
    /// values, so it runs the pass again (the inputs are intact), checking each output as it is made.
    private func firstNonFiniteNode() -> GraphError {
        for (node, context) in zip(model.nodes, contexts) {
            if readable != nil { try? node.op.forward(context) }
            if !isFinite(values[node.output.index], count(node.output)) {
                return .nonFinite(
                    node: node.name, op: node.op.kind, shape: model.shape(of: node.output).batched(batchSize))
            }
        }
        return .nonFinite(node: "output", op: "Output", shape: [])
    }
}

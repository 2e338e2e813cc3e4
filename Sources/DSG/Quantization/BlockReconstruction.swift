import DSGCore
import Foundation

/// A stretch of consecutive nodes reconstructed as one unit: it reads one value and every later node reads only
/// its output (Docs/DSG.md §8.6).
public struct ReconstructionBlock: Sendable {
    /// The nodes' common dotted prefix (`stage1.block0`), or the first and last node's names.
    public let name: String
    /// The positions of its nodes in the model's `nodes`.
    public let nodes: Range<Int>
    /// The value it reads and the value it produces.
    public let input: ValueID, output: ValueID

    /// The block of a single layer (AdaRound's unit): the node at `index`, its first input and its output.
    init(layer: Node, at index: Int) {
        (name, nodes, input, output) = (layer.name, index..<(index + 1), layer.inputs[0], layer.output)
    }

    init(model: Model, nodes: Range<Int>, input: ValueID, output: ValueID) {
        let names = model.nodes[nodes].map { $0.name.split(separator: ".") }
        var prefix = names[0].dropLast()
        for n in names.dropFirst() { while !n.starts(with: prefix) { prefix = prefix.dropLast() } }
        let (first, last) = (model.nodes[nodes.lowerBound].name, model.nodes[nodes.upperBound - 1].name)
        self.name = nodes.count == 1 ? first : prefix.isEmpty ? "\(first)…\(last)" : prefix.joined(separator: ".")
        (self.nodes, self.input, self.output) = (nodes, input, output)
    }
}

/// Block reconstruction (BRECQ and QDrop), and AdaRound as its one-layer case: learn the weight rounding of every
/// quantized layer in a block, and optionally the step sizes of its activation quantizers, so that the block's
/// outputs on cached inputs match the float model's.
public enum BlockReconstruction {
    /// `model`'s nodes cut into blocks, in order: a block ends where a single value is all that later nodes read,
    /// once it holds a convolution or linear layer and the next node is not a one-input, shape-keeping
    /// continuation (BatchNorm, activation, quantizer, per-channel scale or shift). A residual block is then one
    /// block with its closing activation and quantizer; a plain chain is one block per layer; pooling and
    /// reshapes go with the classifier after them. Throws for a model without nodes or of more than one input or
    /// output.
    public static func blocks(of model: Model) throws -> [ReconstructionBlock] {
        guard model.inputs.count == 1, model.outputs.count == 1, !model.nodes.isEmpty else {
            throw QuantizationError.invalidReconstruction("blocks need a model of one input, one output and a node")
        }
        let n = model.nodes.count, first = model.inputs.count
        // The last node reading each value (n for the model's output).
        var lastRead = [Int](repeating: -1, count: first + n)
        for (i, node) in model.nodes.enumerated() { for v in node.inputs { lastRead[v.index] = i } }
        lastRead[model.outputs[0].index] = n
        /// The values made before node `p` that node `p` or a later one reads.
        func live(_ p: Int) -> [Int] { (0..<(first + p)).filter { lastRead[$0] >= p } }
        func continues(_ node: Node) -> Bool {
            !PTQCalibrator.isQuantizedWeight(node) && node.inputs.count == 1
                && model.shape(of: node.inputs[0]) == model.shape(of: node.output)
        }
        var blocks: [ReconstructionBlock] = [], start = 0
        for p in 1...n {
            if p < n {
                guard !continues(model.nodes[p]),
                    model.nodes[start..<p].contains(where: PTQCalibrator.isQuantizedWeight),
                    live(p).count == 1
                else { continue }
            }
            let input = live(start)
            guard input.count == 1 else {
                throw QuantizationError.invalidReconstruction("no single value enters the block at node \(start)")
            }
            let output = p < n ? ValueID(index: live(p)[0]) : model.outputs[0]
            blocks.append(
                ReconstructionBlock(model: model, nodes: start..<p, input: ValueID(index: input[0]), output: output))
            start = p
        }
        return blocks
    }

    /// The units `method` reconstructs in `model`, in order: for AdaRound one per layer named in `layers` (the
    /// quantized ones), otherwise ``blocks(of:)``.
    static func units(of model: Model, method: ReconstructionSettings.Method, layers: Set<String>) throws
        -> [ReconstructionBlock]
    {
        guard method == .adaRound else { return try blocks(of: model) }
        return model.nodes.enumerated().filter { layers.contains($1.name) }.map {
            ReconstructionBlock(layer: $1, at: $0)
        }
    }

    /// What a reconstruction learned: the weights on their grids, by layer; the activation ranges, by
    /// quantization node (`[low, high]`, for its `range` tensor); and the block's error on all inputs (the squared
    /// output error summed over channels, averaged over samples and positions) before and after.
    public struct Result {
        /// The learned weights, on their grids, by layer name.
        public let weights: [String: Tensor]
        /// The learned activation ranges `[low, high]`, by quantization node name (BRECQ and QDrop).
        public let ranges: [String: [Float]]
        /// The block's error with nearest rounding and the calibrated ranges, and with what was learned.
        public let initialError: Double, learnedError: Double
    }

    /// Learns `block` of `model` (a quantized model: its ``FakeQuantOp`` nodes hold calibrated ranges): the
    /// rounding of each layer `quantizers` names (per output channel, starting from that layer's weights in
    /// `floatWeights`), and with BRECQ and QDrop the step size of every activation quantizer in it, so that its
    /// outputs on `inputs` (`[N] +` the block's input shape) match `targets` (`N` times its output's elements).
    /// `progress` hears every step and its loss (reconstruction plus regulariser). Throws, naming the block and
    /// the step, when a gradient is not finite.
    ///
    /// With `group`, each process computes its share of every step's batch (all of them draw the same batch)
    /// and the gradients and the loss are summed over the group before Adam steps, so every process learns
    /// the same rounding and steps as one process would, up to float rounding.
    public static func reconstruct(
        _ block: ReconstructionBlock, of model: Model, floatWeights: Model, quantizers: [String: [UniformQuantizer]],
        inputs: Tensor, targets: Tensor, settings: ReconstructionSettings, seed: UInt64 = 0,
        group: DataParallelGroup? = nil, progress: ((_ iteration: Int, _ loss: Double) -> Void)? = nil
    ) throws -> Result {
        try settings.validate()
        guard !block.nodes.isEmpty, block.nodes.upperBound <= model.nodes.count,
            max(block.input.index, block.output.index) < model.valueShapes.count
        else { throw QuantizationError.invalidReconstruction("\(block.name) is not a block of this model") }
        let schedule = settings.rounding
        let inputShape = model.shape(of: block.input), outputShape = model.shape(of: block.output)
        let n = inputs.shape.rank > 0 ? inputs.shape[0] : 0
        guard n > 0, inputs.shape == inputShape.batched(n), targets.elementCount == n * outputShape.elementCount else {
            throw QuantizationError.invalidReconstruction(
                "\(block.name) reads \(inputShape) and writes \(outputShape) per sample; got \(inputs.shape) and "
                    + "\(targets.shape)")
        }
        let (sub, steps) = try extract(block, of: model, learningSteps: settings.learnsSteps)
        var roundings = try model.nodes[block.nodes].compactMap { node -> LearnedRounding? in
            guard let q = quantizers[node.name] else { return nil }
            return try LearnedRounding(
                layer: node.name, weight: try floatWeights.tensor(named: node.name + ".weight"), quantizers: q)
        }
        let initialSteps = try steps.map { try sub.tensor(named: $0.name + ".step")[0] }
        var stepValues = initialSteps

        let batch = min(schedule.batchSize, n)
        if let group, group.size > batch {
            throw QuantizationError.invalidReconstruction(
                "a batch of \(batch) cannot be shared by \(group.size) processes")
        }
        // This process's slots of every step's batch (all of them without a group).
        let share = group?.share(of: batch) ?? 0..<batch, m = share.count
        let executor = try GraphExecutor(model: sub, batchSize: m)
        let adam = Adam(learningRate: schedule.learningRate), stepAdam = Adam(learningRate: settings.stepLearningRate)
        let perInput = inputShape.elementCount, perOutput = outputShape.elementCount
        // Positions per sample: the loss sums over channels and averages over samples and positions.
        let positions = Float(outputShape.rank == 3 ? outputShape[1] * outputShape[2] : 1)
        let x0 = inputs.scalars, t0 = targets.scalars
        var random = SeededRandom(seed: seed)
        // Everything a step touches is made here, so that a step allocates nothing: the draw's permutation, the
        // batch's targets, each layer's slopes and gradient by `v`, and the positions of the tensors written and
        // read in place (the soft weights, the steps and the drops, and their gradients).
        var order = Array(0..<n)
        var ts = [Float](repeating: 0, count: m * perOutput)
        var slopes = roundings.map { [Float](repeating: 0, count: $0.v.count) }, dv = slopes
        let weightTensors = try roundings.map { try sub.tensorPosition(named: $0.layer + ".weight") }
        let stepTensors = try steps.map { try sub.tensorPosition(named: $0.name + ".step") }
        let dropTensors = try steps.map { try sub.tensorPosition(named: $0.name + ".drop") }
        var stepGradient: Float = 0
        for iteration in 0..<schedule.iterations {
            for i in 0..<n { order[i] = i }
            for i in 0..<batch { order.swapAt(i, i + random.integer(in: 0..<(n - i))) }
            executor.withInput(0) { xs in
                for slot in 0..<m {
                    let sample = order[share.lowerBound + slot]
                    for i in 0..<perInput { xs[slot * perInput + i] = x0[sample * perInput + i] }
                    for i in 0..<perOutput { ts[slot * perOutput + i] = t0[sample * perOutput + i] }
                }
            }
            for k in roundings.indices {
                roundings[k].writeSoft(into: sub.mutablePointer(tensor: weightTensors[k]), slopes: &slopes[k])
            }
            for k in steps.indices {
                sub.mutablePointer(tensor: stepTensors[k])[0] = stepValues[k]
                let drop = sub.mutablePointer(tensor: dropTensors[k])
                (drop[0], drop[1], drop[2]) = (settings.drop, Float(iteration), Float(share.lowerBound))
            }
            try executor.run(training: false)
            executor.zeroGradients()
            var loss = executor.withValue(sub.outputs[0]) { y in
                let g = executor.gradient(of: sub.outputs[0])
                var sum = 0.0
                for i in 0..<(m * perOutput) {
                    let d = y[i] - ts[i]
                    g[i] = 2 * d / (Float(batch) * positions)
                    sum += Double(d * d)
                }
                return sum / (Double(batch) * Double(positions))
            }
            executor.backward()
            if let group {
                executor.sumParameterGradients(over: group)
                withUnsafeMutablePointer(to: &loss) { group.sum(UnsafeMutableBufferPointer(start: $0, count: 1)) }
            }
            var total = loss
            let beta = schedule.beta(at: iteration)
            for k in roundings.indices {
                roundings[k].gradient(
                    weightGradient: executor.tensorGradient(weightTensors[k])!, slopes: slopes[k], into: &dv[k])
                if let beta {
                    total += roundings[k].v.withUnsafeBufferPointer { vs in
                        dv[k].withUnsafeMutableBufferPointer { g in
                            Double(schedule.regularizerWeight)
                                * AdaRound.regularizer(vs, beta: beta, weight: schedule.regularizerWeight, gradient: g)
                        }
                    }
                }
                guard dv[k].allSatisfy({ $0.isFinite }) else { throw nonFinite(block, iteration) }
                roundings[k].v.withUnsafeMutableBufferPointer { p in
                    dv[k].withUnsafeBufferPointer {
                        adam.step(p.baseAddress!, gradient: $0.baseAddress!, count: p.count, slot: k)
                    }
                }
            }
            // QDrop's cosine annealing of the step sizes' learning rate, to 0 at the last step.
            stepAdam.learningRate =
                settings.stepLearningRate
                * Float(0.5 * (1 + cos(Double.pi * Double(iteration) / Double(schedule.iterations))))
            for k in steps.indices {
                stepGradient = executor.tensorGradient(stepTensors[k])![0]
                guard stepGradient.isFinite else { throw nonFinite(block, iteration) }
                stepAdam.step(&stepValues[k], gradient: &stepGradient, count: 1, slot: k)
                // A step size must stay positive; a thousandth of its start is as fine as any grid needs.
                stepValues[k] = max(stepValues[k], initialSteps[k] / 1000)
            }
            progress?(iteration + 1, total)
        }

        func error(_ weights: [Tensor], _ stepSizes: [Float]) throws -> Double {
            for (rounding, w) in zip(roundings, weights) { try sub.setTensor(named: rounding.layer + ".weight", to: w) }
            for ((name, _), step) in zip(steps, stepSizes) {
                try sub.setTensor(named: name + ".step", to: Tensor(shape: [1], scalars: [step]))
                try sub.setTensor(named: name + ".drop", to: Tensor(shape: [3], scalars: [0, 0, 0]))
            }
            let y = try Evaluation.logits(of: sub, on: inputs, batchSize: batch).scalars
            return zip(y, t0).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
                / (Double(n) * Double(positions))
        }
        let hard = roundings.map { $0.hard() }
        let initialError = try error(roundings.map { $0.nearest() }, initialSteps)
        let learnedError = try error(hard, stepValues)
        var ranges: [String: [Float]] = [:]
        for (k, (name, bits)) in steps.enumerated() {
            let zero = try sub.tensor(named: name + ".zeroPoint")[0]
            let low = (zero - Float(1 << (bits - 1))) * stepValues[k]
            ranges[name] = [low, low + Float((1 << bits) - 1) * stepValues[k]]
        }
        return Result(
            weights: Dictionary(uniqueKeysWithValues: zip(roundings.map(\.layer), hard)), ranges: ranges,
            initialError: initialError, learnedError: learnedError)
    }

    private static func nonFinite(_ block: ReconstructionBlock, _ iteration: Int) -> QuantizationError {
        .invalidReconstruction("\(block.name): a non-finite gradient at iteration \(iteration)")
    }

    /// The block's nodes as a model of their own, reading input `x`, with `model`'s tensors; with `learningSteps`
    /// every ``FakeQuantOp`` becomes a ``LearnedStepQuantOp`` of the same grid. Returns it and those nodes' names
    /// and bit-widths.
    private static func extract(_ block: ReconstructionBlock, of model: Model, learningSteps: Bool) throws -> (
        Model, [(name: String, bits: Int)]
    ) {
        let sub = Model()
        var random = SeededRandom(seed: 0)
        var map = [block.input.index: sub.addInput(name: "x", shape: model.shape(of: block.input))]
        var steps: [(name: String, bits: Int)] = []
        for (k, node) in model.nodes[block.nodes].enumerated() {
            var op = node.op
            if learningSteps, let fakeQuant = op as? FakeQuantOp {
                op = LearnedStepQuantOp(bits: fakeQuant.bits, salt: UInt64(k))
                steps.append((node.name, fakeQuant.bits))
            }
            let inputs = try node.inputs.map { v throws(QuantizationError) -> ValueID in
                guard let mapped = map[v.index] else {
                    throw .invalidReconstruction("\(node.name) reads a value from outside \(block.name)")
                }
                return mapped
            }
            map[node.output.index] = try sub.add(op, name: node.name, inputs: inputs, using: &random)
        }
        guard let output = map[block.output.index] else {
            throw QuantizationError.invalidReconstruction("\(block.name) does not produce its output")
        }
        sub.outputs = [output]
        for t in sub.tensors {
            if let value = try? model.tensor(named: t.name) { try sub.setTensor(named: t.name, to: value) }
        }
        for (name, bits) in steps {
            let range = try model.tensor(named: name + ".range")
            let q = UniformQuantizer(bits: bits, low: range[0], high: range[1])
            try sub.setTensor(named: name + ".step", to: Tensor(shape: [1], scalars: [q.stepSize]))
            try sub.setTensor(named: name + ".zeroPoint", to: Tensor(shape: [1], scalars: [q.zeroPoint]))
        }
        return (sub, steps)
    }
}

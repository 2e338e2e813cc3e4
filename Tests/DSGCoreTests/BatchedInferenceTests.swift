import DSGCore
import DSGTestSupport
import Testing

/// The tensor-level batch loop: `GraphExecutor.setInput(_:from:samples:)`, `BatchedInference` and the
/// executor form of `Losses.softmaxCrossEntropy`.
@Suite("Batched inference")
struct BatchedInferenceTests {
    /// `[count, 2, 2]` samples whose values are their own flat indices, so a copied range is recognisable.
    static func numbered(_ count: Int) -> Tensor {
        Tensor(shape: [count, 2, 2], scalars: (0..<count * 4).map(Float.init))
    }

    /// One `[2, 2]` input through a ReLU: the smallest graph with an input buffer to inspect.
    static func identityModel() throws -> Model {
        var b = ModelBuilder(seed: 0)
        let x = b.input("x", [2, 2])
        return b.finish(outputs: [try b.relu(x, "relu")])
    }

    /// Conv + BatchNorm (evaluation, with non-trivial running statistics) + ReLU + linear: every op treats
    /// each sample on its own, so any batching must give the same logits.
    static func perSampleModel() throws -> Model {
        var b = ModelBuilder(seed: 5)
        let x = b.input("image", [2, 5, 5])
        let conv = try b.conv2d(x, "conv", outChannels: 3, kernel: 3, padding: 1)
        let h = try b.relu(try b.batchNorm(conv, "bn"), "relu")
        let model = b.finish(outputs: [try b.linear(try b.flatten(h, "flatten"), "fc", outFeatures: 4)])
        try model.setTensor(named: "bn.running_mean", to: Tensor(shape: [3], scalars: [0.3, -0.2, 0.1]))
        try model.setTensor(named: "bn.running_var", to: Tensor(shape: [3], scalars: [2, 0.5, 1.5]))
        return model
    }

    // MARK: - setInput

    @Test func setInputCopiesExactlyTheGivenSamples() throws {
        let executor = try GraphExecutor(model: try Self.identityModel(), batchSize: 3, backward: false)
        let samples = Self.numbered(5)
        try executor.setInput(0, from: samples, samples: 1..<4)
        let input = executor.value(ValueID(index: 0))
        #expect(input.shape == [3, 2, 2])
        #expect(input.scalars == Array(samples.scalars[4..<16]))
        // The last full batch of the tensor: its last sample is the tensor's last.
        try executor.setInput(0, from: samples, samples: 2..<5)
        #expect(executor.value(ValueID(index: 0)).scalars == Array(samples.scalars[8..<20]))
        // Without a range the tensor must be exactly one batch, copied whole.
        let batch = Self.numbered(3)
        try executor.setInput(from: batch)
        #expect(executor.value(ValueID(index: 0)).scalars == batch.scalars)
    }

    @Test func setInputFillsTheInputItNames() throws {
        var b = ModelBuilder(seed: 0)
        let first = b.input("a", [2, 2]), second = b.input("b", [2, 2])
        let model = b.finish(outputs: [try b.addValues([first, second], "sum")])
        let executor = try GraphExecutor(model: model, batchSize: 2, backward: false)
        let samples = Self.numbered(4)
        try executor.setInput(0, from: samples, samples: 0..<2)
        try executor.setInput(1, from: samples, samples: 2..<4)
        #expect(executor.value(ValueID(index: 0)).scalars == Array(samples.scalars[0..<8]))
        #expect(executor.value(ValueID(index: 1)).scalars == Array(samples.scalars[8..<16]))
        try executor.run(training: false)
        #expect(executor.output().scalars == (0..<8).map { Float(2 * $0 + 8) })
    }

    @Test func setInputRefusesAWrongSampleShape() throws {
        let executor = try GraphExecutor(model: try Self.identityModel(), batchSize: 3, backward: false)
        #expect(throws: GraphError.tensorShape(name: "x", expected: [3, 2, 2], got: [5, 2, 3])) {
            try executor.setInput(0, from: Tensor(shape: [5, 2, 3]), samples: 0..<3)
        }
        #expect(throws: GraphError.tensorShape(name: "x", expected: [3, 2, 2], got: [5, 4])) {
            try executor.setInput(0, from: Tensor(shape: [5, 4]), samples: 0..<3)
        }
        // Without a range, a tensor of another sample count is the wrong shape too.
        #expect(throws: GraphError.tensorShape(name: "x", expected: [3, 2, 2], got: [5, 2, 2])) {
            try executor.setInput(0, from: Self.numbered(5))
        }
    }

    @Test func setInputRefusesARangeThatIsNotOneBatchInsideTheTensor() throws {
        let executor = try GraphExecutor(model: try Self.identityModel(), batchSize: 3, backward: false)
        let samples = Self.numbered(5)
        for range in [0..<2, 0..<4, 3..<6, -1..<2, 5..<8] {
            #expect(throws: GraphError.sampleRange(input: "x", range: range, samples: 5, batchSize: 3)) {
                try executor.setInput(0, from: samples, samples: range)
            }
        }
        // A refused range leaves the input as it was.
        try executor.setInput(0, from: samples, samples: 0..<3)
        _ = try? executor.setInput(0, from: samples, samples: 3..<6)
        #expect(executor.value(ValueID(index: 0)).scalars == Array(samples.scalars[0..<12]))
    }

    // MARK: - BatchedInference

    @Test(arguments: [(10, 4, [0..<4, 4..<8, 8..<10]), (8, 4, [0..<4, 4..<8]), (3, 4, [0..<3]), (0, 4, [])])
    func visitsEverySampleOnceInOrder(count: Int, batchSize: Int, expected: [Range<Int>]) throws {
        let inference = try BatchedInference(model: try Self.identityModel(), batchSize: batchSize)
        let samples = Self.numbered(count)
        var ranges: [Range<Int>] = []
        try inference.forEachBatch(of: samples) { executor, range in
            ranges.append(range)
            #expect(executor.batchSize == range.count)
            // The executor holds this batch's samples, and the pass has run on them.
            let first = range.lowerBound * 4, last = range.upperBound * 4
            #expect(executor.value(ValueID(index: 0)).scalars == Array(samples.scalars[first..<last]))
            #expect(executor.output().scalars == Array(samples.scalars[first..<last]))
        }
        #expect(ranges == expected)
    }

    @Test func batchedOutputsEqualOnePassOverAllSamples() throws {
        let model = try Self.perSampleModel()
        var random = SeededRandom(seed: 9)
        let samples = random.normalTensor([10, 2, 5, 5])
        let whole = try GraphExecutor(model: model, batchSize: 10, backward: false)
        try whole.forward([samples], training: false)
        let expected = whole.output().scalars
        #expect(expected.contains { $0 != 0 })

        let inference = try BatchedInference(model: model, batchSize: 4)
        // Twice: the second call reuses the executors the first one made and must not be disturbed by them.
        for _ in 0..<2 {
            var logits: [Float] = []
            try inference.forEachBatch(of: samples) { executor, _ in logits += executor.output().scalars }
            #expect(logits == expected)
        }
    }

    @Test func executorsAreMadeOncePerBatchSize() throws {
        let inference = try BatchedInference(model: try Self.identityModel(), batchSize: 4)
        var seen: [Int: Set<ObjectIdentifier>] = [:]
        for count in [10, 9, 6] {
            try inference.forEachBatch(of: Self.numbered(count)) { executor, range in
                seen[range.count, default: []].insert(ObjectIdentifier(executor))
            }
        }
        // Full batches of 4 and last batches of 2 and 1, each with one executor for all three sets.
        #expect(seen.keys.sorted() == [1, 2, 4])
        #expect(seen.values.allSatisfy { $0.count == 1 })
    }

    @Test func refusesBatchSizeZeroAndModelsWithSeveralInputs() throws {
        #expect(throws: GraphError.invalidBatchSize(0)) {
            try BatchedInference(model: try Self.identityModel(), batchSize: 0)
        }
        var b = ModelBuilder(seed: 0)
        let first = b.input("a", [2, 2]), second = b.input("b", [2, 2])
        let model = b.finish(outputs: [try b.addValues([first, second], "sum")])
        let inference = try BatchedInference(model: model, batchSize: 2)
        var calls = 0
        #expect(throws: GraphError.inputCount(expected: 2, got: 1)) {
            try inference.forEachBatch(of: Self.numbered(4)) { _, _ in calls += 1 }
        }
        #expect(calls == 0)
    }

    // MARK: - Cross-entropy on an executor

    /// A linear classifier of `[6]` features into 5 classes, with a second output (its input) so that
    /// choosing the output by index matters.
    static func classifier() throws -> Model {
        var b = ModelBuilder(seed: 2)
        let x = b.input("features", [6])
        let logits = try b.linear(x, "fc", outFeatures: 5)
        return b.finish(outputs: [try b.relu(x, "relu"), logits])
    }

    @Test func executorCrossEntropyEqualsTheBufferForm() throws {
        let executor = try GraphExecutor(model: try Self.classifier(), batchSize: 3)
        var random = SeededRandom(seed: 4)
        try executor.forward([random.normalTensor([3, 6], standardDeviation: 2)], training: false)
        let labels: [Int32] = [4, 0, 2]
        let logits = executor.output(1).scalars

        var expectedGradient = [Float](repeating: 0, count: 15)
        let expected = try Losses.softmaxCrossEntropy(
            logits: logits, labels: labels, batch: 3, classes: 5, gradient: &expectedGradient, scale: 0.5)

        executor.zeroGradients()
        let value = try Losses.softmaxCrossEntropy(executor, labels: labels, output: 1, scale: 0.5)
        let outputValue = executor.model.outputs[1]
        #expect(value == expected)
        #expect(Array(executor.gradient(of: outputValue)) == expectedGradient)
        #expect(expectedGradient.contains { $0 != 0 })
        // The gradient is added to what is there, not written over it.
        _ = try Losses.softmaxCrossEntropy(executor, labels: labels, output: 1, scale: 0.5)
        #expect(Array(executor.gradient(of: outputValue)) == expectedGradient.map { $0 + $0 })
        // The other output's gradient is untouched.
        #expect(executor.gradient(of: executor.model.outputs[0]).allSatisfy { $0 == 0 })
    }

    @Test func executorCrossEntropyRefusesAWrongLabelCountAndNonLogits() throws {
        let executor = try GraphExecutor(model: try Self.classifier(), batchSize: 3)
        try executor.forward([Tensor(shape: [3, 6], repeating: 1)], training: false)
        executor.zeroGradients()
        #expect(throws: GraphError.tensorShape(name: "labels", expected: [3], got: [2])) {
            try Losses.softmaxCrossEntropy(executor, labels: [0, 1], output: 1)
        }
        #expect(throws: GraphError.tensorShape(name: "labels", expected: [3], got: [4])) {
            try Losses.softmaxCrossEntropy(executor, labels: [0, 1, 2, 3], output: 1)
        }
        #expect(executor.gradient(of: executor.model.outputs[1]).allSatisfy { $0 == 0 })

        let images = try GraphExecutor(model: try Self.identityModel(), batchSize: 3)
        #expect(
            throws: GraphError.shapeMismatch(
                node: "output 0", op: "SoftmaxCrossEntropy", inputs: [[2, 2]], expected: "[classes] logits")
        ) {
            try Losses.softmaxCrossEntropy(images, labels: [0, 1, 0])
        }
    }

    // MARK: - outputsOnly

    @Test func outputsOnlyExecutorsGiveTheSameOutputsFromAFractionOfTheBuffers() throws {
        // ResNet-20's residual adds read a value twice, far apart: the plan must keep it until its last reader.
        let model = try ResNet.resnet20()
        var random = SeededRandom(seed: 3)
        let images = random.normalTensor([2, 1, 28, 28])
        let full = try GraphExecutor(model: model, batchSize: 2, backward: false)
        let light = try GraphExecutor(model: model, batchSize: 2, backward: false, outputsOnly: true)
        try full.forward([images], training: false)
        try light.forward([images], training: false)
        #expect(light.output().scalars == full.output().scalars)
        // A second pass over other images: nothing left from the first leaks in.
        let others = random.normalTensor([2, 1, 28, 28])
        try full.forward([others], training: false)
        try light.forward([others], training: false)
        #expect(light.output().scalars == full.output().scalars)

        let counts = model.valueShapes.map(\.elementCount)
        let (slotOfValue, sizes) = GraphExecutor.sharedSlots(model, counts: counts)
        #expect(sizes.reduce(0, +) * 4 < counts.reduce(0, +), "\(sizes.reduce(0, +)) of \(counts.reduce(0, +)) floats")
        #expect(zip(slotOfValue, counts).allSatisfy { sizes[$0] >= $1 })
    }

    @Test func sharedSlotsNeverHandALiveValuesBufferToAnother() throws {
        for model in [try ResNet.resnet20(), try MobileNetV2.build(input: [3, 32, 32], classes: 10, width: 0.25)] {
            let counts = model.valueShapes.map(\.elementCount)
            let (slotOfValue, _) = GraphExecutor.sharedSlots(model, counts: counts)
            var lastReader = Array(repeating: -1, count: counts.count)
            for (k, node) in model.nodes.enumerated() { for input in node.inputs { lastReader[input.index] = k } }
            let kept = Set(model.inputs.indices).union(model.outputs.map(\.index))
            // While node k runs, its inputs, its output and every value read later are alive: no two share a slot.
            for (k, node) in model.nodes.enumerated() {
                let alive = (0..<counts.count).filter { v in
                    let made = v < model.inputs.count ? -1 : model.nodes.firstIndex { $0.output.index == v }!
                    return made <= k && (kept.contains(v) || lastReader[v] >= k || v == node.output.index)
                }
                #expect(Set(alive.map { slotOfValue[$0] }).count == alive.count, "node \(node.name)")
            }
        }
    }

    @Test func outputsOnlyExecutorsStillNameTheFirstNonFiniteNode() throws {
        // The overflow is in the second convolution, whose output takes the first one's slot: read after the
        // pass, that slot would make the first convolution look guilty.
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [1, 4, 4])
        let first = try b.relu(try b.conv2d(x, "first", outChannels: 2, kernel: 3, padding: 1), "relu1")
        let model = b.finish(
            outputs: [try b.relu(try b.conv2d(first, "second", outChannels: 2, kernel: 3, padding: 1), "relu2")])
        var w = try model.tensor(named: "second.weight")
        for i in 0..<w.elementCount { w[i] = .greatestFiniteMagnitude }
        try model.setTensor(named: "second.weight", to: w)
        let executor = try GraphExecutor(model: model, batchSize: 2, backward: false, outputsOnly: true)
        #expect(throws: GraphError.nonFinite(node: "second", op: "Conv2d", shape: [2, 2, 4, 4])) {
            try executor.forward([Tensor(shape: [2, 1, 4, 4], repeating: 3)], training: false)
        }
    }
}

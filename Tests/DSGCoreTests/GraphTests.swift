import DSGCore
import Foundation
import Testing

@Suite("Graph building, execution and bad input")
struct GraphTests {
    @Test func shapeMismatchNamesTheNodeAndShapes() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [3, 8, 8])
        let y = try b.conv2d(x, "conv", outChannels: 4, kernel: 3)  // [4, 6, 6]
        #expect(
            throws: GraphError.shapeMismatch(
                node: "add", op: "Add", inputs: [[3, 8, 8], [4, 6, 6]], expected: "at least 2 inputs of one shape")
        ) {
            try b.addValues([x, y], "add")
        }
        #expect(
            throws: GraphError.shapeMismatch(node: "fc", op: "Linear", inputs: [[4, 6, 6]], expected: "one input [10]")
        ) {
            try b.add(LinearOp(inFeatures: 10, outFeatures: 2), "fc", [y])
        }
        do {
            _ = try b.addValues([x, y], "add")
        } catch {
            #expect(error.description.contains("'add'") && error.description.contains("[4, 6, 6]"))
        }
    }

    @Test func impossibleConvolutionIsATypedError() {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [1, 4, 4])
        #expect(
            throws: GraphError.invalidGeometry(
                node: "big", op: "Conv2d", input: [1, 4, 4],
                reason: "the dilated kernel 5x5 is larger than the padded input 4x4")
        ) {
            try b.conv2d(x, "big", outChannels: 2, kernel: 5)
        }
        #expect(
            throws: GraphError.invalidGeometry(
                node: "still", op: "Conv2d", input: [1, 4, 4], reason: "stride must be positive")
        ) {
            try b.conv2d(x, "still", outChannels: 2, kernel: 3, stride: 0)
        }
    }

    @Test func unknownValuesAndDuplicateNames() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [2])
        #expect(throws: GraphError.unknownValue(node: "r", value: 5)) {
            try b.add(ActivationOp(.relu), "r", [ValueID(index: 5)])
        }
        _ = try b.relu(x, "r")
        #expect(throws: GraphError.duplicateName("r")) { try b.relu(x, "r") }
        #expect(throws: GraphError.unknownTensor("r.weight")) { try b.model.tensor(named: "r.weight") }
    }

    @Test func badInputsAndNonFiniteValuesThrow() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [1, 4, 4])
        let h = try b.batchNorm(try b.conv2d(x, "conv", outChannels: 2, kernel: 3, padding: 1), "bn")
        let model = b.finish(outputs: [try b.relu(h, "relu")])
        let executor = try GraphExecutor(model: model, batchSize: 2)
        #expect(throws: GraphError.inputCount(expected: 1, got: 0)) { try executor.forward([], training: false) }
        #expect(throws: GraphError.tensorShape(name: "image", expected: [2, 1, 4, 4], got: [1, 1, 4, 4])) {
            try executor.forward([Tensor(shape: [1, 1, 4, 4])], training: false)
        }
        var nanInput = Tensor(shape: [2, 1, 4, 4])
        nanInput[3] = .nan
        #expect(throws: GraphError.nonFinite(node: "image", op: "Input", shape: [2, 1, 4, 4])) {
            try executor.forward([nanInput], training: false)
        }
        // A weight that overflows: the first node whose output is not finite is named.
        var w = try model.tensor(named: "conv.weight")
        w[0] = .greatestFiniteMagnitude
        try model.setTensor(named: "conv.weight", to: w)
        #expect(throws: GraphError.nonFinite(node: "conv", op: "Conv2d", shape: [2, 2, 4, 4])) {
            try executor.forward([Tensor(shape: [2, 1, 4, 4], repeating: 3)], training: false)
        }
    }

    @Test func impossibleBatchSizesAndPoolingWindowsThrow() throws {
        let model = try ResNet.resnet20()
        #expect(throws: GraphError.invalidBatchSize(0)) { try GraphExecutor(model: model, batchSize: 0) }
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [2, 6, 6])
        #expect(
            throws: GraphError.invalidGeometry(
                node: "pool", op: "MaxPool2d", input: [2, 6, 6], reason: "padding must be at most half the window (2x2)"
            )
        ) {
            try b.maxPool(x, "pool", kernel: 2, stride: 2, padding: 2)
        }
    }

    @Test func labelsOutOfRangeThrow() throws {
        var b = ModelBuilder(seed: 0)
        let y = b.input("label", [])
        let model = b.finish(outputs: [try b.add(EmbeddingOp(classes: 3, dimension: 2), "embed", [y])])
        let executor = try GraphExecutor(model: model, batchSize: 2)
        #expect(throws: GraphError.labelOutOfRange(node: "embed", label: 3, classes: 3)) {
            try executor.forward([Tensor(shape: [2], scalars: [0, 3])], training: false)
        }
        try executor.forward([Tensor(shape: [2], scalars: [2, 0])], training: false)
        let table = try model.tensor(named: "embed.weight")
        #expect(executor.output().scalars == [table[4], table[5], table[0], table[1]])
    }

    @Test func conditionalBatchNormRefusesBadLabelsAndShapes() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [2, 3, 3]), y = b.input("label", [])
        let op = ConditionalBatchNormOp(channels: 2, classes: 3)
        #expect(
            throws: GraphError.shapeMismatch(
                node: "cbn", op: "ConditionalBatchNorm", inputs: [[2, 3, 3], [2, 3, 3]],
                expected: "[2, ...] and one label per sample (shape [])")
        ) {
            try b.add(op, "cbn", [x, x])
        }
        let model = b.finish(outputs: [try b.add(op, "cbn", [x, y])])
        let executor = try GraphExecutor(model: model, batchSize: 2)
        let images = Tensor(shape: [2, 2, 3, 3], scalars: (0..<36).map { Float($0) })
        for bad: Float in [3, -1, 0.5] {
            #expect(throws: GraphError.labelOutOfRange(node: "cbn", label: bad, classes: 3)) {
                try executor.forward([images, Tensor(shape: [2], scalars: [0, bad])], training: true)
            }
        }
        try executor.forward([images, Tensor(shape: [2], scalars: [2, 0])], training: true)
        #expect(executor.output().scalars.allSatisfy { $0.isFinite })
    }

    @Test func parametersAndBuffersAreSeparate() throws {
        let model = try ResNet.resnet20()
        let buffers = model.tensors.filter { $0.role == .buffer }.map(\.name)
        #expect(buffers.count == 42)
        #expect(buffers.allSatisfy { $0.hasSuffix("running_mean") || $0.hasSuffix("running_var") })
        #expect(buffers.contains("stage2.block0.shortcut.bn.running_mean"))
        // Evaluation mode leaves the running statistics alone; training mode moves them.
        let executor = try GraphExecutor(model: model, batchSize: 2)
        var rng = SeededRandom(seed: 5)
        let x = rng.normalTensor([2, 1, 28, 28])
        let before = try model.tensor(named: "bn1.running_mean").scalars
        try executor.forward([x], training: false)
        #expect(try model.tensor(named: "bn1.running_mean").scalars == before)
        try executor.forward([x], training: true)
        #expect(try model.tensor(named: "bn1.running_mean").scalars != before)
    }

    @Test func copiesDoNotShareWeights() throws {
        let model = try ResNet.resnet20()
        let copy = model.copy()
        let executor = try GraphExecutor(model: copy, batchSize: 1)
        try executor.forward([Tensor(shape: [1, 1, 28, 28], repeating: 1)], training: true)
        executor.zeroGradients()
        executor.gradient(of: copy.outputs[0])[0] = 1
        executor.backward()
        SGD(learningRate: 0.1).step(executor)
        #expect(try model.tensor(named: "fc.weight").scalars != copy.tensor(named: "fc.weight").scalars)
        #expect(try model.tensor(named: "bn1.running_var").scalars == [Float](repeating: 1, count: 16))
    }

    @Test func imageNetBuildersHaveTheRightShapes() throws {
        let r18 = try ResNet.resnet18()
        #expect(r18.shape(of: r18.outputs[0]) == [1000])
        #expect(r18.parameterCount == 11_689_512)  // torchvision's resnet18
        let mobile = try MobileNetV2.build()
        #expect(mobile.shape(of: mobile.outputs[0]) == [1000])
        #expect(mobile.parameterCount == 3_504_872)  // torchvision's mobilenet_v2
        #expect(mobile.nodes.filter { $0.op is BatchNormOp }.count == 52)
        // torchvision's mobilenet_v2(width_mult=0.5): channels rounded to multiples of 8, the head kept at 1280.
        #expect(try MobileNetV2.build(width: 0.5).parameterCount == 1_968_680)
    }

    @Test func mobileNetV2ForFashionMNISTEndsOnAFourByFourMap() throws {
        let mobile = try MobileNetV2.build(input: [1, 28, 28], classes: 10, width: 0.5, strides: .smallImages)
        #expect(mobile.shape(of: mobile.outputs[0]) == [10])
        // torchvision's mobilenet_v2(width_mult=0.5, num_classes=10) with a one-channel stem.
        #expect(mobile.parameterCount == 700_202)
        let pool = try #require(mobile.nodes.first { $0.name == "pool" })
        #expect(mobile.shape(of: pool.inputs[0]) == [1280, 4, 4])
        let paper = try MobileNetV2.build(input: [1, 28, 28], classes: 10, width: 0.5)
        let paperPool = try #require(paper.nodes.first { $0.name == "pool" })
        #expect(paper.shape(of: paperPool.inputs[0]) == [1280, 1, 1])
    }
}

@Suite("Seeded random numbers")
struct RandomTests {
    @Test func reproducibleAndWellDistributed() throws {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let xs = (0..<20_000).map { _ in a.normal() }
        #expect(xs == (0..<20_000).map { _ in b.normal() })
        #expect(xs.prefix(10) != (0..<10).map { _ in c.normal() }[...])
        let mean = xs.reduce(0, +) / Float(xs.count)
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(xs.count)
        #expect(abs(mean) < 0.03 && abs(variance - 1) < 0.03)
        let us = (0..<20_000).map { _ in a.uniform(-1, 3) }
        #expect(us.allSatisfy { $0 >= -1 && $0 < 3 })
        #expect(abs(us.reduce(0, +) / Float(us.count) - 1) < 0.03)
        let ints = (0..<1000).map { _ in a.integer(in: 0..<10) }
        #expect(Set(ints) == Set(0..<10))
        // The state survives JSON exactly (checkpoints store it there).
        let restored = try JSONDecoder().decode(SeededRandom.self, from: JSONEncoder().encode(a))
        #expect(restored == a)
    }
}

@Suite("Reading BatchNorm layers and injecting gradients")
struct InjectionTests {
    @Test func batchNormLayersExposeInputsAndStatistics() throws {
        let model = try ResNet.resnet20()
        let layers = model.batchNormLayers
        #expect(layers.count == 21)
        #expect(layers.first?.name == "bn1" && layers.last?.name == "stage3.block2.bn2")
        // Each BatchNorm reads the output of the convolution before it.
        for layer in layers { #expect(model.node(producing: layer.input)?.op is Conv2dOp) }
        let stats = model.runningStatistics(of: layers[3])
        #expect(stats.mean.shape == [layers[3].channels] && stats.variance.scalars.allSatisfy { $0 == 1 })
    }

    /// A gradient added at an intermediate value (here a BatchNorm input, as DSG does) reaches the graph input
    /// as the gradient of `L = Σ value · r`, checked by central differences of that value.
    @Test func injectedGradientMatchesFiniteDifferences() throws {
        var b = ModelBuilder(seed: 4)
        let x = b.input("image", [2, 6, 6])
        let conv = try b.conv2d(x, "conv", outChannels: 3, kernel: 3, padding: 1)
        let bn = try b.batchNorm(conv, "bn")
        let h = try b.relu(bn, "relu")
        let model = b.finish(outputs: [try b.linear(try b.flatten(h, "flatten"), "fc", outFeatures: 4)])
        let layer = model.batchNormLayers[0]
        #expect(layer.input == conv)

        let executor = try GraphExecutor(model: model, batchSize: 2)
        executor.inputsRequireGradient = [true]
        var rng = SeededRandom(seed: 9)
        let input = rng.normalTensor([2, 2, 6, 6])
        let r = rng.normalTensor([2, 3, 6, 6])
        func loss(_ xs: Tensor) throws -> Double {
            try executor.forward([xs], training: true)
            return executor.withValue(layer.input) { v in v.indices.reduce(0.0) { $0 + Double(v[$1]) * Double(r[$1]) } }
        }
        _ = try loss(input)
        executor.zeroGradients()
        let g = executor.gradient(of: layer.input)
        for i in g.indices { g[i] = r[i] }
        executor.backward()
        let analytic = Array(executor.gradient(of: ValueID(index: 0)))
        #expect(analytic.contains { $0 != 0 })
        for i in stride(from: 0, to: input.elementCount, by: 7) {
            var plus = input, minus = input
            plus[i] += 1e-2
            minus[i] -= 1e-2
            let numeric = (try loss(plus) - loss(minus)) / 2e-2
            #expect(abs(numeric - Double(analytic[i])) < 2e-4 + 1e-3 * abs(numeric), "input[\(i)]")
        }
        // Only the convolution lies between the input and the injection point: parameters after it get nothing.
        #expect(try executor.parameterGradient(named: "fc.weight").scalars.allSatisfy { $0 == 0 })
    }
}

@Suite("Inference-only executors")
struct InferenceExecutorTests {
    @Test func sameOutputsWithoutGradientBuffers() throws {
        let model = try ResNet.resnet20()
        var g = SeededRandom(seed: 2)
        let x = g.normalTensor([3, 1, 28, 28])
        let full = try GraphExecutor(model: model, batchSize: 3)
        let light = try GraphExecutor(model: model, batchSize: 3, backward: false)
        try full.forward([x], training: false)
        try light.forward([x], training: false)
        #expect(light.output().scalars == full.output().scalars && !light.supportsBackward)
    }
}

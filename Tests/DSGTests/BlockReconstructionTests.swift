import DSGCore
import DSGTestSupport
import Foundation
import Testing

@testable import DSG

/// BRECQ and QDrop: the learned-step quantizer against PyTorch and its drops, the blocks a model is cut into, and
/// block reconstruction on a residual network (held-out error, PTQ, checkpoints, export, bad requests).
@Suite("Block reconstruction")
struct BlockReconstructionTests {
    /// A model of one `LearnedStepQuantOp` over `[n]` values, with its step and zero point set.
    private func quantizerModel(bits: Int, n: Int, step: Float, zeroPoint: Float, drop: [Float] = [0, 0]) throws
        -> Model
    {
        let model = Model()
        var random = SeededRandom(seed: 0)
        let x = model.addInput(name: "x", shape: [n])
        try model.add(LearnedStepQuantOp(bits: bits, salt: 3), name: "q", inputs: [x], using: &random)
        try model.setTensor(named: "q.step", to: Tensor(shape: [1], scalars: [step]))
        try model.setTensor(named: "q.zeroPoint", to: Tensor(shape: [1], scalars: [zeroPoint]))
        try model.setTensor(named: "q.drop", to: Tensor(shape: [3], scalars: drop + [0]))
        return model
    }

    /// Forward, and the gradients of `Σ output · upstream` by the input and by the step.
    private func run(_ model: Model, _ x: [Float], upstream: [Float]) throws -> (y: [Float], dx: [Float], dStep: Float)
    {
        let executor = try GraphExecutor(model: model, batchSize: 1)
        executor.inputsRequireGradient = [true]
        try executor.forward([Tensor(shape: [1, x.count], scalars: x)], training: false)
        let y = executor.output().scalars
        executor.zeroGradients()
        let g = executor.gradient(of: model.outputs[0])
        for i in g.indices { g[i] = upstream[i] }
        executor.backward()
        let dx = Array(executor.gradient(of: ValueID(index: 0)))
        return (y, dx, try executor.parameterGradient(named: "q.step")[0])
    }

    /// PyTorch's learnable fake quantization (LSQ's gradients) on values inside and beyond both ends of the range,
    /// at 2, 3, 4 and 8 bits (Fixtures/generate_learned_step_fixture.py).
    @Test func learnedStepQuantizerMatchesPyTorch() throws {
        let fixture = try Fixture(named: "learned_step_quant.json", in: .module)
        let cases = fixture.array("cases").map { Fixture($0 as! [String: Any]) }
        #expect(cases.count == 4)
        for c in cases {
            let x = c.floats("x"), bits = Int(c.double("bits"))
            let model = try quantizerModel(
                bits: bits, n: x.count, step: Float(c.double("step")), zeroPoint: Float(c.double("zero_point")))
            let (y, dx, dStep) = try run(model, x, upstream: c.floats("upstream"))
            #expect(zip(y, c.floats("output")).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }, "\(bits) bits")
            #expect(dx == c.floats("x_grad"), "\(bits) bits: the input gradient is 1 inside the range, 0 outside")
            let expected = Float(c.double("step_grad"))
            #expect(abs(dStep - expected) <= 1e-4 * max(1, abs(expected)), "\(bits) bits: \(dStep) vs \(expected)")
        }
    }

    /// QDrop's drops: with probability 0.5 about half of the elements keep their float value (each of them passing
    /// its gradient to the input even beyond the range, and none to the step), the draws change with the seed and
    /// repeat with it; with probability 0 none is kept.
    @Test func dropKeepsTheFloatValueAtItsRate() throws {
        let n = 20_000
        // Every value off the grid (the step is 1, the values are k + 0.3) and half of them beyond the range.
        let x = (0..<n).map { Float($0 % 16) - 4 + 0.3 }
        let upstream = (0..<n).map { Float($0 % 7) - 3 }
        func kept(_ drop: [Float]) throws -> (Set<Int>, [Float], Float) {
            let model = try quantizerModel(bits: 3, n: n, step: 1, zeroPoint: 0, drop: drop)
            let (y, dx, dStep) = try run(model, x, upstream: upstream)
            return (Set(x.indices.filter { y[$0] == x[$0] }), dx, dStep)
        }
        // A drop seed that is no step count (not finite, negative) draws as seed 0 instead of trapping.
        #expect(try kept([0.5, .nan]).0 == kept([0.5, 0]).0 && kept([0.5, -3]).0 == kept([0.5, 0]).0)
        let (none, _, plainStep) = try kept([0, 7])
        #expect(none.isEmpty)
        let (half, dx, dStep) = try kept([0.5, 7])
        #expect(abs(Double(half.count) / Double(n) - 0.5) < 0.015, "\(half.count) of \(n) kept")
        #expect(try kept([0.5, 7]).0 == half, "the same seed draws the same elements")
        #expect(try kept([0.5, 8]).0 != half, "another seed draws others")
        #expect(half.allSatisfy { dx[$0] == upstream[$0] }, "a kept element passes its gradient, in range or not")
        // The step's gradient is the no-drop one without the kept elements' terms (q − u inside, q + z outside).
        var withoutKept = Double(plainStep)
        for i in half {
            let u = x[i], q = u.rounded(.toNearestOrEven)
            withoutKept -= Double(upstream[i] * (q < -4 || q > 3 ? min(max(q, -4), 3) : q - u))
        }
        #expect(abs(Double(dStep) - withoutKept) < 1e-3 * max(1, abs(withoutKept)))
    }

    /// An executor holding the last two samples of a batch of four (`drop[2]` = 2, the first it holds) keeps the
    /// float values the whole batch's executor keeps in those samples.
    @Test func aShareOfABatchDropsWhatTheWholeBatchDropsThere() throws {
        let model = try quantizerModel(bits: 3, n: 50, step: 1, zeroPoint: 0)
        let x = Tensor(shape: [4, 50], scalars: (0..<200).map { Float($0 % 16) - 4 + 0.3 })
        func output(samples: Range<Int>, first: Float) throws -> [Float] {
            try model.setTensor(named: "q.drop", to: Tensor(shape: [3], scalars: [0.5, 7, first]))
            let executor = try GraphExecutor(model: model, batchSize: samples.count)
            try executor.setInput(0, from: x, samples: samples)
            try executor.run(training: false)
            return executor.output().scalars
        }
        let whole = try output(samples: 0..<4, first: 0)
        #expect(try output(samples: 2..<4, first: 2) == Array(whole[100...]))
        #expect(try output(samples: 2..<4, first: 0) != Array(whole[100...]), "the draws depend on the first sample")
    }

    /// Every block of `model` covers the nodes in order, reads from outside only its input, and nothing after it
    /// reads anything of it but its output: what reconstruction relies on to cache a block's inputs and targets.
    private func expectBlocksAreClosed(_ model: Model, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let blocks = try BlockReconstruction.blocks(of: model)
        #expect(blocks.flatMap { Array($0.nodes) } == Array(model.nodes.indices), sourceLocation: sourceLocation)
        for block in blocks {
            let inside = Set(model.nodes[block.nodes].map(\.output.index))
            let reads = model.nodes[block.nodes].flatMap(\.inputs).map(\.index)
            #expect(
                reads.allSatisfy { inside.contains($0) || $0 == block.input.index }
                    && inside.contains(block.output.index),
                "\(block.name) reads from outside", sourceLocation: sourceLocation)
            let later =
                model.nodes[block.nodes.upperBound...].flatMap(\.inputs).map(\.index)
                + model.outputs.map(\.index)
            #expect(
                later.allSatisfy { !inside.contains($0) || $0 == block.output.index },
                "\(block.name) is read from after it", sourceLocation: sourceLocation)
        }
    }

    /// The embedded ResNet-20 is cut into the stem, its nine residual blocks and the classifier, with and without
    /// the integer-kernel quantizers; MobileNetV2's residual inverted blocks stay whole; every block of those and
    /// of two imported ONNX models (ResNet-20 as PyTorch names it, and a squeeze-and-excitation network whose
    /// channel attention branches and joins again) is closed.
    @Test func modelsAreCutIntoClosedBlocks() throws {
        let model = try DSG.defaultModel()
        var random = SeededRandom(seed: 1)
        let samples = random.normalTensor([2, 1, 28, 28])
        let stages = (1...3).flatMap { s in (0..<3).map { "stage\(s).block\($0)" } }
        for integer in [false, true] {
            var configuration = PTQConfiguration(weightBits: 4, activationBits: 4)
            configuration.integerKernels = integer
            let quantized = try PTQCalibrator(configuration: configuration).quantize(model, calibration: samples)
            let blocks = try BlockReconstruction.blocks(of: quantized.model)
            #expect(blocks.map(\.name) == ["conv1…relu1.quant"] + stages + ["pool…fc"], "integer kernels: \(integer)")
            try expectBlocksAreClosed(quantized.model)
        }
        let mobile = try MobileNetV2.build(input: [3, 32, 32], classes: 10)
        let quantized = try PTQCalibrator(configuration: PTQConfiguration()).quantize(
            mobile, calibration: random.normalTensor([2, 3, 32, 32]))
        let names = try BlockReconstruction.blocks(of: quantized.model).map(\.name)
        let residual = Set(
            mobile.nodes.filter { $0.op is AddOp }.map {
                $0.name.split(separator: ".").dropLast().joined(separator: ".")
            })
        #expect(!residual.isEmpty && residual.isSubset(of: Set(names)), "\(names)")
        try expectBlocksAreClosed(quantized.model)
        for file in ["resnet20-fashion-mnist.onnx", "squeeze-excite.onnx"] {
            let imported = try Model.load(contentsOf: try ONNXImportTests.fixture(file))
            let q = try PTQCalibrator(configuration: PTQConfiguration()).quantize(
                imported, calibration: random.normalTensor(imported.inputs[0].shape.batched(2)))
            try expectBlocksAreClosed(q.model)
            #expect(try BlockReconstruction.blocks(of: q.model).count > 1, "\(file)")
        }
    }

    /// Block reconstruction of the residual block at W2A4 on 32 calibration samples lowers the block's output
    /// error on 32 held-out samples below nearest rounding's, with BRECQ and with QDrop, and QDrop's drops change
    /// what is learned.
    @Test func reconstructionLowersTheHeldOutBlockError() throws {
        let float = try TestModels.residualNetwork()
        var random = SeededRandom(seed: 31)
        let calibration = random.normalTensor([32, 1, 8, 8], mean: 0.5, standardDeviation: 2)
        let heldOut = random.normalTensor([32, 1, 8, 8], mean: 0.5, standardDeviation: 2)
        let plain = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 2, activationBits: 4)).quantize(
            float, calibration: calibration)
        let block = try #require(try BlockReconstruction.blocks(of: plain.model).first { $0.name == "block" })
        let target = try PTQCalibrator.floatValue(of: block.output, in: plain.model, float: float)
        func data(_ samples: Tensor) throws -> (Tensor, Tensor) {
            (
                try PTQCalibrator.values(of: block.input, in: plain.model, on: samples, batchSize: 16),
                try PTQCalibrator.values(of: target, in: float, on: samples, batchSize: 16)
            )
        }
        let (x, y) = try data(calibration), (_, yh) = try data(heldOut)
        // The block's output on the held-out samples (the stem before it is the same in every model compared).
        func heldOutError(_ model: Model) throws -> Double {
            let out = try PTQCalibrator.values(of: block.output, in: model, on: heldOut, batchSize: 16).scalars
            return zip(out, yh.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        }
        let nearest = try heldOutError(plain.model)
        let quantizers = Dictionary(uniqueKeysWithValues: plain.weights.map { ($0.layer, $0.quantizers) })
        var learnedRanges: [[String: [Float]]] = []
        for method in [ReconstructionSettings.Method.brecq, .qDrop] {
            var settings = ReconstructionSettings(method: method)
            settings.rounding.iterations = 400
            let result = try BlockReconstruction.reconstruct(
                block, of: plain.model, floatWeights: float, quantizers: quantizers, inputs: x, targets: y,
                settings: settings)
            #expect(Set(result.weights.keys) == ["block.conv1", "block.conv2"])
            #expect(Set(result.ranges.keys) == ["block.relu1.quant", "block.relu2.quant"])
            #expect(result.learnedError < result.initialError)
            let learned = plain.model.copy()
            for (layer, w) in result.weights { try learned.setTensor(named: layer + ".weight", to: w) }
            for (node, r) in result.ranges {
                try learned.setTensor(named: node + ".range", to: Tensor(shape: [2], scalars: r))
            }
            let error = try heldOutError(learned)
            #expect(error < 0.8 * nearest, "\(method): held-out error \(error), nearest rounding's \(nearest)")
            learnedRanges.append(result.ranges)
        }
        // (On this small block and short schedule both end with the same rounding, but not the same steps.)
        #expect(learnedRanges[0] != learnedRanges[1], "QDrop's drops change what is learned")
    }

    /// PTQ with BRECQ on the residual network: three blocks heard in order, nearest rounding's quantizers with
    /// every weight on its grid, learned activation ranges, a closer output than nearest rounding's; a checkpoint
    /// after every block from which a run stopped after the first block ends as an uninterrupted one; the setting
    /// survives a save and load, and the model exports to QDQ.
    @Test func ptqWithBRECQLearnsBlockByBlockAndResumes() throws {
        let float = try TestModels.residualNetwork()
        var random = SeededRandom(seed: 41)
        let samples = random.normalTensor([16, 1, 8, 8], mean: 0.5, standardDeviation: 2)
        let nearest = PTQConfiguration(weightBits: 3, activationBits: 3)
        var configuration = nearest
        configuration.reconstruction = ReconstructionSettings(method: .brecq)
        configuration.reconstruction?.rounding.iterations = 100
        let plain = try PTQCalibrator(configuration: nearest).quantize(float, calibration: samples)
        let calibrator = try PTQCalibrator(configuration: configuration)
        let folder = try TemporaryFolder("brecq")
        let file = folder.file("checkpoint.safetensors")
        var heard: [PTQCalibrator.ReconstructionProgress] = []
        let whole = try calibrator.quantize(float, calibration: samples, checkpoint: file) { heard.append($0) }
        #expect(heard.map(\.block).uniqued() == ["conv1…relu1.quant", "block", "pool…fc"])
        #expect(heard.count == 300 && heard.allSatisfy { $0.blocks == 3 && $0.loss.isFinite })
        #expect(whole.weights == plain.weights, "the same weight quantizers; only the rounding is learned")
        for record in whole.weights {
            let w = try whole.model.tensor(named: record.layer + ".weight").scalars
            let size = w.count / record.quantizers.count
            #expect(
                w.indices.allSatisfy { record.quantizers[$0 / size](w[$0]) == w[$0] }, "\(record.layer) on its grid")
        }
        let ranges = { (q: QuantizedModel) in q.activations.map { [$0.low, $0.high] } }
        #expect(zip(ranges(whole), ranges(plain)).allSatisfy { $0 != $1 }, "every activation range is learned")
        let reference = try Evaluation.logits(of: float, on: samples).scalars
        func error(_ q: QuantizedModel) throws -> Float {
            zip(try Evaluation.logits(of: q.model, on: samples).scalars, reference).map { ($0 - $1) * ($0 - $1) }
                .reduce(0, +)
        }
        #expect(try error(whole) < error(plain))

        let saved = try Safetensors.read(file)
        #expect(
            saved.tensors.map(\.name) == [
                "conv1.weight", "relu1.quant.range", "block.conv1.weight", "block.conv2.weight",
                "block.relu1.quant.range", "block.relu2.quant.range", "fc.weight",
            ])
        // As if killed during the second block: only the first block's tensors were written.
        try Safetensors.write(
            Safetensors.Contents(tensors: Array(saved.tensors.prefix(2)), metadata: saved.metadata), to: file)
        var blocks: Set<String> = []
        let resumed = try calibrator.quantize(float, calibration: samples, checkpoint: file) { blocks.insert($0.block) }
        #expect(blocks == ["block", "pool…fc"])
        for t in whole.model.tensors {
            #expect(try resumed.model.tensor(named: t.name).scalars == t.tensor.scalars, "\(t.name)")
        }
        var steps = 0
        _ = try calibrator.quantize(float, calibration: samples, checkpoint: file) { _ in steps += 1 }
        #expect(steps == 0, "a finished checkpoint leaves nothing to learn")
        var qDrop = configuration
        qDrop.reconstruction?.method = .qDrop
        #expect(throws: QuantizationError.self) {
            try PTQCalibrator(configuration: qDrop).quantize(float, calibration: samples, checkpoint: file)
        }

        try whole.save(to: folder.file("q.safetensors"))
        let loaded = try QuantizedModel.load(from: folder.file("q.safetensors"), architecture: float)
        #expect(loaded.configuration == configuration)
        #expect(ranges(loaded) == ranges(whole))
        try whole.writeONNX(to: folder.file("q.onnx"))
        #expect(FileManager.default.fileExists(atPath: folder.file("q.onnx").path))
    }

    /// The first and last layers keep their policy under reconstruction: in Float32 they stay the float model's
    /// weights; at 8 bits their rounding is learned on the 8-bit grid while the rest use 3 bits.
    @Test func reconstructionKeepsTheEdgeLayersPolicy() throws {
        let float = try TestModels.residualNetwork()
        var random = SeededRandom(seed: 43)
        let samples = random.normalTensor([8, 1, 8, 8])
        for policy in [PTQConfiguration.EdgeLayers.fullPrecision, .eightBit] {
            var configuration = PTQConfiguration(weightBits: 3, activationBits: 3)
            configuration.edgeLayers = policy
            configuration.reconstruction = ReconstructionSettings(method: .brecq)
            configuration.reconstruction?.rounding.iterations = 20
            let q = try PTQCalibrator(configuration: configuration).quantize(float, calibration: samples)
            let bits = Dictionary(uniqueKeysWithValues: q.weights.map { ($0.layer, $0.bits) })
            for edge in ["conv1", "fc"] {
                let w = try q.model.tensor(named: edge + ".weight").scalars
                let original = try float.tensor(named: edge + ".weight").scalars
                if policy == .fullPrecision {
                    #expect(bits[edge] == nil && w == original, "\(edge)")
                } else {
                    #expect(bits[edge] == 8, "\(edge)")
                }
            }
            #expect(bits["block.conv1"] == 3 && bits["block.conv2"] == 3, "\(policy)")
            for record in q.weights {
                let w = try q.model.tensor(named: record.layer + ".weight").scalars
                let size = w.count / record.quantizers.count
                #expect(
                    w.indices.allSatisfy { record.quantizers[$0 / size](w[$0]) == w[$0] },
                    "\(policy): \(record.layer) on its grid")
            }
        }
    }

    /// Impossible settings, and a loss that overflows (naming the block and the step), are typed errors.
    @Test func badRequestsAreTypedErrors() throws {
        var settings = ReconstructionSettings(method: .qDrop)
        settings.dropProbability = 1
        #expect(throws: QuantizationError.self) { try settings.validate() }
        settings.dropProbability = 0.5
        settings.stepLearningRate = -1
        #expect(throws: QuantizationError.self) { try settings.validate() }
        settings.stepLearningRate = .nan
        #expect(throws: QuantizationError.self) { try settings.validate() }
        settings = ReconstructionSettings(method: .brecq)
        settings.rounding.iterations = 0
        var configuration = PTQConfiguration(weightBits: 3, activationBits: 3)
        configuration.reconstruction = settings
        #expect(throws: QuantizationError.invalidReconstruction("iterations and batch size must be at least 1")) {
            try PTQCalibrator(configuration: configuration)
        }

        let float = try TestModels.residualNetwork()
        var random = SeededRandom(seed: 51)
        let samples = random.normalTensor([4, 1, 8, 8])
        let plain = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 3, activationBits: 3)).quantize(
            float, calibration: samples)
        let block = try #require(try BlockReconstruction.blocks(of: plain.model).first { $0.name == "block" })
        let quantizers = Dictionary(uniqueKeysWithValues: plain.weights.map { ($0.layer, $0.quantizers) })
        let inputs = try PTQCalibrator.values(of: block.input, in: plain.model, on: samples, batchSize: 4)
        settings.rounding.iterations = 10
        // Targets of the wrong size, then targets so large that the loss's gradient overflows.
        #expect(throws: QuantizationError.self) {
            try BlockReconstruction.reconstruct(
                block, of: plain.model, floatWeights: float, quantizers: quantizers, inputs: inputs, targets: samples,
                settings: settings)
        }
        let huge = Tensor(shape: inputs.shape, scalars: [Float](repeating: 3e38, count: inputs.elementCount))
        #expect(throws: QuantizationError.invalidReconstruction("block: a non-finite gradient at iteration 0")) {
            try BlockReconstruction.reconstruct(
                block, of: plain.model, floatWeights: float, quantizers: quantizers, inputs: inputs, targets: huge,
                settings: settings)
        }
        // A block of another model.
        let small = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 3, activationBits: 3)).quantize(
            try TestModels.batchNormNetwork(), calibration: samples)
        let foreign = try #require(try BlockReconstruction.blocks(of: plain.model).last)
        #expect(throws: QuantizationError.self) {
            try BlockReconstruction.reconstruct(
                foreign, of: small.model, floatWeights: float, quantizers: quantizers, inputs: inputs,
                targets: inputs, settings: settings)
        }
        // A model without nodes has no blocks.
        let empty = Model()
        empty.outputs = [empty.addInput(name: "x", shape: [2])]
        #expect(throws: QuantizationError.self) { try BlockReconstruction.blocks(of: empty) }
        // A model of two outputs has no blocks.
        let two = float.copy()
        two.outputs = [two.outputs[0], two.nodes[0].output]
        #expect(throws: QuantizationError.self) { try BlockReconstruction.blocks(of: two) }
    }
    /// A configuration saved before BRECQ and QDrop (an AdaRound schedule under `adaRound`) reads as AdaRound with
    /// that schedule; one with both keys keeps its `reconstruction`.
    @Test func oldFilesReadAsAdaRound() throws {
        var old =
            try JSONSerialization.jsonObject(
                with: JSONEncoder().encode(PTQConfiguration(weightBits: 3, activationBits: 3))) as! [String: Any]
        var schedule = AdaRoundSchedule()
        schedule.iterations = 77
        old["adaRound"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(schedule))
        let decoded = try JSONDecoder().decode(
            PTQConfiguration.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(decoded.reconstruction?.method == .adaRound && decoded.reconstruction?.rounding == schedule)
        old["reconstruction"] = try JSONSerialization.jsonObject(
            with: JSONEncoder().encode(ReconstructionSettings(method: .qDrop)))
        let both = try JSONDecoder().decode(PTQConfiguration.self, from: JSONSerialization.data(withJSONObject: old))
        #expect(both.reconstruction == ReconstructionSettings(method: .qDrop))
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    fileprivate func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}

import DSG
import DSGTestSupport
import Foundation
import Testing

/// AdaRound's pieces: the rectified sigmoid and the regulariser with their gradients (finite differences), the
/// annealing schedule, and layer reconstruction against the best rounding found by exhaustive search.
@Suite("AdaRound")
struct AdaRoundTests {
    @Test func rectifiedSigmoidAndItsGradient() {
        for v: Float in [-2, -0.7, 0, 0.9, 2] {
            let h: Float = 1e-3
            let numeric = (AdaRound.rectifiedSigmoid(v + h) - AdaRound.rectifiedSigmoid(v - h)) / (2 * h)
            #expect(abs(numeric - AdaRound.rectifiedSigmoidDerivative(v)) < 1e-3, "v \(v)")
        }
        // Clipped to [0, 1] beyond |v| = ln 11 (σ = 1/12 or 11/12), with no gradient there.
        #expect(AdaRound.rectifiedSigmoid(-4) == 0 && AdaRound.rectifiedSigmoid(4) == 1)
        #expect(AdaRound.rectifiedSigmoidDerivative(-4) == 0 && AdaRound.rectifiedSigmoidDerivative(4) == 0)
        #expect(abs(AdaRound.rectifiedSigmoid(0) - 0.5) < 1e-7)
        for f: Float in [0, 0.25, 0.5, 0.9] {
            #expect(abs(AdaRound.rectifiedSigmoid(AdaRound.variable(forFraction: f)) - f) < 1e-6, "fraction \(f)")
        }
    }

    @Test(arguments: [Float(2), 5, 20]) func regulariserAndItsGradient(beta: Float) {
        let v: [Float] = [-1.9, -0.6, 0.3, 1.2, 2.1]
        var gradient = [Float](repeating: 0, count: v.count)
        let value = v.withUnsafeBufferPointer { vs in
            gradient.withUnsafeMutableBufferPointer { AdaRound.regularizer(vs, beta: beta, weight: 0.5, gradient: $0) }
        }
        func f(_ x: [Float]) -> Double {
            var scratch = [Float](repeating: 0, count: x.count)
            return x.withUnsafeBufferPointer { xs in
                scratch.withUnsafeMutableBufferPointer { AdaRound.regularizer(xs, beta: beta, weight: 0, gradient: $0) }
            }
        }
        #expect(abs(value - f(v)) < 1e-12)
        for i in v.indices {
            var plus = v, minus = v
            plus[i] += 1e-3
            minus[i] -= 1e-3
            let numeric = 0.5 * (f(plus) - f(minus)) / 2e-3
            #expect(abs(numeric - Double(gradient[i])) < 2e-3 * max(1, abs(numeric)), "β \(beta), v \(v[i])")
        }
        // 1 per weight halfway (h = 1/2), 0 at a decided rounding.
        #expect(abs(f([0, 0]) - 2) < 1e-6 && f([-4, 4]) == 0)
    }

    @Test func theScheduleWarmsUpThenAnnealsBeta() throws {
        var s = AdaRoundSchedule()
        s.iterations = 100
        #expect(s.beta(at: 0) == nil && s.beta(at: 19) == nil)
        #expect(s.beta(at: 20) == 20)
        #expect(abs(s.beta(at: 60)! - 11) < 1e-5)  // halfway through the annealing
        #expect(abs(s.beta(at: 99)! - (2 + 18 * (1 - 79.0 / 80))) < 1e-4)
        s.iterations = 0
        #expect(throws: QuantizationError.self) { try s.validate() }
        s.iterations = 10
        s.learningRate = .nan
        #expect(throws: QuantizationError.self) { try s.validate() }
    }

    /// One output of four weights at 2 bits: every one of the 2^4 up/down choices is tried, and AdaRound's learned
    /// rounding is the best one, which nearest rounding is 30 times worse than. (AdaRound is a relaxation, not a
    /// search: on other seeds of this problem it does not always find the best rounding.)
    @Test func findsTheBestRoundingOfASmallLayer() throws {
        let n = 4
        var b = ModelBuilder(seed: 5)
        let x = b.input("x", [n])
        let model = b.finish(outputs: [try b.linear(x, "fc", outFeatures: 1)])
        var random = SeededRandom(seed: 105)
        // Correlated inputs, so that rounding errors interact and the best choice is not each nearest level.
        let base = random.normalTensor([64, 1]).scalars, noise = random.normalTensor([64, n]).scalars
        let inputs = Tensor(
            shape: [64, n], scalars: (0..<(64 * n)).map { 10 * (base[$0 / n] + 0.3 * noise[$0]) })
        let targets = try Evaluation.logits(of: model, on: inputs)
        let w = try model.tensor(named: "fc.weight").scalars
        let quantizer = UniformQuantizer(bits: 2, low: w.min()!, high: w.max()!)
        var schedule = AdaRoundSchedule()
        (schedule.iterations, schedule.batchSize) = (2000, 64)
        let result = try AdaRound.reconstruct(
            model.nodes[0], of: model, quantizers: [quantizer], inputs: inputs, targets: targets, schedule: schedule)

        func error(_ weights: [Float]) throws -> Double {
            let m = model.copy()
            try m.setTensor(named: "fc.weight", to: Tensor(shape: [1, n], scalars: weights))
            let y = try Evaluation.logits(of: m, on: inputs).scalars
            return zip(y, targets.scalars).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / 64
        }
        let step = quantizer.stepSize
        let down = w.map { quantizer($0 - step / 2 + 1e-6 * step) }
        let candidates = (0..<(1 << n)).map { mask in
            w.indices.map { i in mask >> i & 1 == 1 ? quantizer(down[i] + step) : down[i] }
        }
        let errors = try candidates.map(error)
        let best = errors.min()!
        let nearest = try error(w.map { quantizer($0) })
        #expect(nearest > best * 10, "nearest rounding is nearly optimal: the test would prove little")
        #expect(abs(result.learnedError - best) <= 1e-9 * max(best, 1), "learned \(result.learnedError), best \(best)")
        #expect(abs(result.nearestError - nearest) <= 1e-9 * max(nearest, 1))
        // Hard rounding leaves every weight on the grid.
        #expect(result.weights.scalars.allSatisfy { quantizer($0) == $0 })
    }

    /// PTQ with AdaRound: every quantized weight still lies on its channel's grid, the quantizers are nearest
    /// rounding's, the output moves closer to the float model's than nearest rounding's on the calibration samples,
    /// and the setting survives a save and load.
    @Test func ptqLearnsTheRoundingOfEveryLayer() throws {
        let model = try TestModels.batchNormNetwork()
        var random = SeededRandom(seed: 21)
        let samples = random.normalTensor([16, 1, 8, 8])
        let nearest = PTQConfiguration(weightBits: 3, activationBits: 8)
        var learned = nearest
        learned.reconstruction = ReconstructionSettings(method: .adaRound)
        learned.reconstruction?.rounding.iterations = 300
        let plain = try PTQCalibrator(configuration: nearest).quantize(model, calibration: samples)
        var heard: [PTQCalibrator.ReconstructionProgress] = []
        let adaRound = try PTQCalibrator(configuration: learned).quantize(model, calibration: samples) {
            heard.append($0)
        }
        #expect(heard.count == 3 * 300 && heard.allSatisfy { $0.blocks == 3 && $0.loss.isFinite })
        #expect(heard.last?.block == "fc" && heard.last?.iteration == 300 && heard.last?.blockIndex == 2)
        #expect(adaRound.weights == plain.weights, "the same quantizers; only the rounding is learned")
        var moved = 0
        for record in adaRound.weights {
            let w = try adaRound.model.tensor(named: record.layer + ".weight").scalars
            let size = w.count / record.quantizers.count
            #expect(
                w.indices.allSatisfy { record.quantizers[$0 / size](w[$0]) == w[$0] }, "\(record.layer) on its grid")
            moved += zip(w, try plain.model.tensor(named: record.layer + ".weight").scalars).filter { $0 != $1 }.count
        }
        #expect(moved > 0, "AdaRound rounded some weight the other way")
        let reference = try Evaluation.logits(of: model, on: samples).scalars
        func error(_ q: QuantizedModel) throws -> Float {
            zip(try Evaluation.logits(of: q.model, on: samples).scalars, reference).map { ($0 - $1) * ($0 - $1) }
                .reduce(0, +)
        }
        #expect(try error(adaRound) < error(plain))
        let folder = try TemporaryFolder("adaround")
        try adaRound.save(to: folder.file("q.safetensors"))
        let loaded = try QuantizedModel.load(from: folder.file("q.safetensors"), architecture: model)
        #expect(loaded.configuration == learned)
        learned.reconstruction?.rounding.iterations = 0
        #expect(throws: QuantizationError.invalidReconstruction("iterations and batch size must be at least 1")) {
            try PTQCalibrator(configuration: learned)
        }
    }

    /// A checkpoint after every layer: a run that stopped after two of three layers learns only the third and
    /// ends with the weights of a run never stopped; a finished checkpoint learns nothing; another setting's is
    /// refused.
    @Test func aStoppedReconstructionContinuesAtItsLayer() throws {
        let model = try TestModels.batchNormNetwork()
        var random = SeededRandom(seed: 22)
        let samples = random.normalTensor([8, 1, 8, 8])
        var configuration = PTQConfiguration(weightBits: 3, activationBits: 8)
        configuration.reconstruction = ReconstructionSettings(method: .adaRound)
        configuration.reconstruction?.rounding.iterations = 50
        let calibrator = try PTQCalibrator(configuration: configuration)
        let folder = try TemporaryFolder("resume")
        let file = folder.file("checkpoint.safetensors")
        let whole = try calibrator.quantize(model, calibration: samples, checkpoint: file)
        let saved = try Safetensors.read(file)
        #expect(saved.tensors.map(\.name) == ["conv1.weight", "conv2.weight", "fc.weight"])
        var steps = 0
        _ = try calibrator.quantize(model, calibration: samples, checkpoint: file) { _ in steps += 1 }
        #expect(steps == 0, "a finished checkpoint leaves nothing to learn")
        // As if killed during the last layer: only the first two layers' weights were written.
        try Safetensors.write(
            Safetensors.Contents(tensors: Array(saved.tensors.prefix(2)), metadata: saved.metadata), to: file)
        var layers: Set<String> = []
        let resumed = try calibrator.quantize(model, calibration: samples, checkpoint: file) { layers.insert($0.block) }
        #expect(layers == ["fc"])
        for record in whole.weights {
            let name = record.layer + ".weight"
            #expect(try resumed.model.tensor(named: name).scalars == whole.model.tensor(named: name).scalars, "\(name)")
        }
        var other = configuration
        other.reconstruction?.rounding.iterations = 60
        #expect(throws: QuantizationError.self) {
            try PTQCalibrator(configuration: other).quantize(model, calibration: samples, checkpoint: file)
        }
        let fewer = Tensor(shape: [4, 1, 8, 8], scalars: Array(samples.scalars.prefix(256)))
        #expect(throws: QuantizationError.self) { try calibrator.quantize(model, calibration: fewer, checkpoint: file) }
    }

    @Test func badRequestsAreTypedErrors() throws {
        let model = try TestModels.batchNormNetwork()
        let conv = try #require(model.nodes.first { $0.op is Conv2dOp })
        let bn = try #require(model.nodes.first { $0.op is BatchNormOp })
        let q = [UniformQuantizer](repeating: UniformQuantizer(bits: 4, low: -1, high: 1), count: 4)
        let inputs = Tensor(shape: [2, 1, 8, 8], scalars: [Float](repeating: 0, count: 128))
        #expect(throws: QuantizationError.self) {
            try AdaRound.reconstruct(bn, of: model, quantizers: q, inputs: inputs, targets: inputs)
        }
        #expect(throws: QuantizationError.self) {
            try AdaRound.reconstruct(conv, of: model, quantizers: q, inputs: inputs, targets: inputs)
        }
        // One quantizer for a layer of several output channels.
        let inputShape = model.shape(of: conv.inputs[0]), outputShape = model.shape(of: conv.output)
        let x8 = Tensor(
            shape: inputShape.batched(2), scalars: [Float](repeating: 0, count: 2 * inputShape.elementCount))
        let y8 = Tensor(
            shape: [2, outputShape.elementCount], scalars: [Float](repeating: 0, count: 2 * outputShape.elementCount))
        #expect(throws: QuantizationError.invalidReconstruction("conv1 has 4 output channels and 1 quantizers")) {
            try AdaRound.reconstruct(conv, of: model, quantizers: [q[0]], inputs: x8, targets: y8)
        }
        // Targets so large that the loss's gradient overflows stop the run, naming the layer and the iteration.
        // (A NaN in the inputs is refused earlier, by the executor, naming the input.)
        var b = ModelBuilder(seed: 1)
        let linear = b.finish(outputs: [try b.linear(b.input("x", [2]), "fc", outFeatures: 1)])
        let x = Tensor(shape: [4, 2], scalars: [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(throws: QuantizationError.invalidReconstruction("fc: a non-finite gradient at iteration 0")) {
            try AdaRound.reconstruct(
                linear.nodes[0], of: linear, quantizers: [UniformQuantizer(bits: 4, low: -1, high: 1)], inputs: x,
                targets: Tensor(shape: [4, 1], scalars: [Float](repeating: 3e38, count: 4)))
        }
    }
}

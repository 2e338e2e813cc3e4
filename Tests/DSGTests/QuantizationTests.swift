import DSG
import DSGTestSupport
import Foundation
import Testing

@Suite("Post-training quantization")
struct QuantizationTests {
    @Test(arguments: 2...8)
    func quantizerHitsTheEndsAndHasTwoToTheKLevels(bits: Int) {
        let (low, high): (Float, Float) = (-0.37, 1.93)
        let q = UniformQuantizer(bits: bits, low: low, high: high)
        let step = q.stepSize
        // The ends map to themselves up to the rounding of the zero point (at most half a step).
        #expect(abs(q(low) - low) <= step / 2 + 1e-6 && abs(q(high) - high) <= step / 2 + 1e-6)
        let levels = Set(stride(from: low - 1, through: high + 1, by: (high - low) / 5000).map { q($0) })
        #expect(levels.count == 1 << bits)
        // Inside the range the error is at most half a step.
        for x in stride(from: low, through: high, by: (high - low) / 997) where abs(q(x) - x) > step / 2 + 1e-5 {
            Issue.record("x = \(x): error \(abs(q(x) - x)) > half step \(step / 2)")
        }
    }

    @Test func impossibleBitWidthsAreRefused() {
        #expect(throws: QuantizationError.bitWidth(1, what: "weight")) {
            try PTQCalibrator(configuration: PTQConfiguration(weightBits: 1, activationBits: 4))
        }
        #expect(throws: QuantizationError.bitWidth(9, what: "activation")) {
            try PTQCalibrator(configuration: PTQConfiguration(weightBits: 4, activationBits: 9))
        }
    }

    static func samples(_ n: Int, seed: UInt64) -> Tensor {
        var g = SeededRandom(seed: seed)
        return g.normalTensor([n, 1, 8, 8], mean: 0.5, standardDeviation: 2)
    }

    static func outputs(_ model: Model, _ x: Tensor) throws -> [Float] {
        let e = try GraphExecutor(model: model, batchSize: x.shape[0])
        try e.forward([x], training: false)
        return e.output().scalars
    }

    @Test func quantizedModelStructureWeightsAndAccuracyOfBitWidths() throws {
        let model = try TestModels.batchNormNetwork()
        let calibration = Self.samples(32, seed: 1), test = Self.samples(16, seed: 2)
        let reference = try Self.outputs(model, test)
        var errors: [Double] = []
        for bits in [8, 4, 2] {
            let q = try PTQCalibrator(configuration: PTQConfiguration(weightBits: bits, activationBits: bits)).quantize(
                model, calibration: calibration)
            // One fake-quantization node after each of the two ReLUs.
            #expect(q.model.nodes.filter { $0.op is FakeQuantOp }.map(\.name) == ["relu1.quant", "relu2.quant"])
            // At most 2^k distinct values per output channel of every weight.
            for name in ["conv1.weight", "conv2.weight", "fc.weight"] {
                let w = try q.model.tensor(named: name)
                let size = w.elementCount / w.shape[0]
                for o in 0..<w.shape[0] { #expect(Set(w.scalars[(o * size)..<((o + 1) * size)]).count <= 1 << bits) }
            }
            let range = try q.model.tensor(named: "relu1.quant.range").scalars
            #expect(range[0] == 0 && range[1] > 0)
            let out = try Self.outputs(q.model, test)
            errors.append(zip(out, reference).map { Double(abs($0 - $1)) }.max()!)
        }
        #expect(
            errors[0] < 0.05 && errors[0] < errors[1] && errors[1] < errors[2],
            "max output error at 8, 4, 2 bits: \(errors)")
        // The float model is untouched.
        #expect(try Self.outputs(model, test) == reference)
    }

    /// Two linear layers with hand-set weights, each followed by a ReLU, and five samples: small enough that the
    /// ReLU outputs, and so every calibration's range, can be worked out here without the code under test.
    enum HandCalibration {
        static let w1: [[Float]] = [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 2, 0], [0.5, 0, 0, 1]]
        static let b1: [Float] = [0, 0, -1, 0.5]
        static let w2: [[Float]] = [[1, 1, 0, 0], [0, 0, 1, -1], [0.5, 0, 0, 0.5]]
        static let b2: [Float] = [0, 0, -0.25]
        // Dyadic values, so the float model computes the activations exactly. Chosen so that, with batches of 2
        // ({0, 1}, {2, 3}, {4}): relu1's largest value lies in the middle batch, the short last batch has no zero
        // (the mse low end is its minimum, not 0) and relu2's largest mean of sample maxima is in that last batch
        // (a mean over the wrong sample count would show).
        static let samples: [[Float]] = [
            [1, 0.5, 0.25, -1], [-2, -3, 1.5, 0], [4, 1, 0, 2], [0, -6, 3, 1], [5, -5, 3, 0.5],
        ]
        static let batchSize = 2

        static func model() throws -> Model {
            var b = ModelBuilder(seed: 0)
            let x = b.input("x", [4])
            let h = try b.relu(try b.linear(x, "fc1", outFeatures: 4), "relu1")
            let model = b.finish(outputs: [try b.relu(try b.linear(h, "fc2", outFeatures: 3), "relu2")])
            try model.setTensor(named: "fc1.weight", to: Tensor(shape: [4, 4], scalars: w1.flatMap { $0 }))
            try model.setTensor(named: "fc1.bias", to: Tensor(shape: [4], scalars: b1))
            try model.setTensor(named: "fc2.weight", to: Tensor(shape: [3, 4], scalars: w2.flatMap { $0 }))
            try model.setTensor(named: "fc2.bias", to: Tensor(shape: [3], scalars: b2))
            return model
        }

        static func reluLinear(_ w: [[Float]], _ b: [Float], _ x: [Float]) -> [Float] {
            zip(w, b).map { row, bias in max(0, zip(row, x).reduce(bias) { $0 + $1.0 * $1.1 }) }
        }

        /// Per activation (relu1, relu2), per batch, per sample: the ReLU's outputs.
        static func activations() -> [[[[Float]]]] {
            let relu1 = samples.map { reluLinear(w1, b1, $0) }
            let relu2 = relu1.map { reluLinear(w2, b2, $0) }
            return [relu1, relu2].map { a in
                stride(from: 0, to: a.count, by: batchSize).map { Array(a[$0..<min($0 + batchSize, a.count)]) }
            }
        }

        /// NumPy's linear-interpolation quantile of `values`.
        static func quantile(_ values: [Float], _ q: Double) -> Float {
            let s = values.map(Double.init).sorted(), position = q * Double(s.count - 1)
            let i = Int(position), j = min(i + 1, s.count - 1)
            return Float(s[i] + (s[j] - s[i]) * (position - Double(i)))
        }

        /// Docs/DSG.md §8.1's quantize-dequantize, written out.
        static func fakeQuantize(_ x: Float, bits: Int, low: Float, high: Float) -> Float {
            let s = Float(Double((1 << bits) - 1) / max(Double(high) - Double(low), 1e-8))
            let half = Float(1 << (bits - 1))
            let zero = (s * low).rounded(.toNearestOrEven) + half
            return (min(max((s * x - zero).rounded(.toNearestOrEven), -half), half - 1) + zero) / s
        }

        /// The range `method` must give one activation whose batches are `batches`.
        static func expected(
            _ method: PTQConfiguration.ActivationCalibration, _ batches: [[[Float]]], bits: Int
        ) -> (Float, Float) {
            // Each batch's estimate; the running extremes over batches start at 0.
            let perBatch: [(Float, Float)]
            switch method {
            case .minMax:
                perBatch = batches.map { ($0.joined().min()!, $0.joined().max()!) }
            case .meanSampleExtremes:
                perBatch = batches.map { b in
                    let n = Float(b.count)
                    return (b.map { $0.min()! }.reduce(0, +) / n, b.map { $0.max()! }.reduce(0, +) / n)
                }
            case .percentile:
                perBatch = batches.map { b in
                    let values = Array(b.joined())
                    return (quantile(values, 0.00001), quantile(values, 0.99999))
                }
            case .mse:
                // Every batch: the extremes (from 0), and the maximum lowered by i% of the range, least squared error.
                let values = Array(batches.joined().joined())
                let low = min(0, values.min()!), high = max(0, values.max()!)
                var best = (low, high), bestError = Double.infinity
                for i in 0..<80 {
                    let top = high - Float(i) * 0.01 * (high - low)
                    let error = values.reduce(0.0) { e, x in
                        let d = Double(fakeQuantize(x, bits: bits, low: low, high: top) - x)
                        return e + d * d
                    }
                    if error < bestError { (best, bestError) = ((low, top), error) }
                }
                return best
            }
            return perBatch.reduce((0, 0)) { (min($0.0, $1.0), max($0.1, $1.1)) }
        }
    }

    @Test(arguments: PTQConfiguration.ActivationCalibration.allCases)
    func calibrationFollowsItsDefinition(_ method: PTQConfiguration.ActivationCalibration) throws {
        // 2 bits: mse lowers relu1's upper end from 6 to 5.1 over all three batches (the last batch alone gives 5.0).
        var config = PTQConfiguration(weightBits: 8, activationBits: 2)
        config.activationCalibration = method
        config.batchSize = HandCalibration.batchSize
        let samples = Tensor(shape: [5, 4], scalars: HandCalibration.samples.flatMap { $0 })
        let q = try PTQCalibrator(configuration: config).quantize(HandCalibration.model(), calibration: samples)
        let ranges = q.activations
        #expect(ranges.map(\.activation) == ["relu1", "relu2"])
        let expected = HandCalibration.activations().map { HandCalibration.expected(method, $0, bits: 2) }
        let actual = ranges.flatMap { [$0.low, $0.high] }
        expectClose(actual, expected.flatMap { [$0.0, $0.1] }, rtol: 1e-6, atol: 1e-6, "\(method) ranges")
    }

    @Test func savesAndLoads() throws {
        let model = try TestModels.batchNormNetwork()
        var config = PTQConfiguration(weightBits: 4, activationBits: 6)
        config.weightRange = .mse
        config.edgeLayers = .eightBit
        let q = try PTQCalibrator(configuration: config).quantize(model, calibration: Self.samples(16, seed: 4))
        let folder = try TemporaryFolder("dsg-q")
        let url = folder.file("quantized.safetensors")
        try q.save(to: url)
        let back = try QuantizedModel.load(from: url, architecture: model)
        #expect(back.configuration == config)
        let test = Self.samples(8, seed: 5)
        #expect(try Self.outputs(back.model, test) == Self.outputs(q.model, test))
        // A float model's file is not a quantized model.
        let plain = folder.file("float.safetensors")
        try Safetensors.write(Safetensors.Contents(tensors: model.stateDict), to: plain)
        #expect(throws: SafetensorsError.self) { try QuantizedModel.load(from: plain, architecture: model) }
    }

    @Test func fakeQuantizationPassesGradientsStraightThrough() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("x", [5])
        let model = b.finish(outputs: [try b.add(FakeQuantOp(bits: 2), "q", [x])])
        try model.setTensor(named: "q.range", to: Tensor(shape: [2], scalars: [0, 1]))
        let e = try GraphExecutor(model: model, batchSize: 1)
        e.inputsRequireGradient = [true]
        try e.forward([Tensor(shape: [1, 5], scalars: [-1, 0.1, 0.4, 0.9, 3])], training: false)
        // 2 bits over [0, 1]: levels 0, 1/3, 2/3, 1; values outside clamp to the ends.
        let expected: [Float] = [0, 0, 1.0 / 3, 1, 1]
        expectClose(e.output().scalars, expected, rtol: 0, atol: 1e-6, "fake-quantized values")
        e.zeroGradients()
        let g = e.gradient(of: model.outputs[0])
        for i in 0..<5 { g[i] = Float(i + 1) }
        e.backward()
        #expect(Array(e.gradient(of: x)) == [1, 2, 3, 4, 5])
    }
}

@Suite("BatchNorm folding")
struct BatchNormFoldingTests {
    @Test func foldedResNet20ComputesTheSameFunction() throws {
        let model = try ResNet.resnet20()
        // Non-trivial running statistics and affine parameters.
        let warm = try GraphExecutor(model: model, batchSize: 8)
        var g = SeededRandom(seed: 1)
        for _ in 0..<3 {
            try warm.forward([g.normalTensor([8, 1, 28, 28], mean: 0.3, standardDeviation: 1.5)], training: true)
        }
        for t in model.tensors where t.name.hasSuffix("bn1.weight") || t.name.hasSuffix("bn2.bias") {
            try model.setTensor(named: t.name, to: g.uniformTensor(t.tensor.shape, 0.5, 1.5))
        }
        let folded = try BatchNormFolding.fold(model)
        #expect(folded.batchNormLayers.isEmpty)
        #expect(folded.nodes.count == model.nodes.count - 21)
        let x = g.normalTensor([4, 1, 28, 28])
        let a = try QuantizationTests.outputs(model, x), b = try QuantizationTests.outputs(folded, x)
        let scale = Double(a.map { abs($0) }.max()!)
        expectClose(b, a, rtol: 0, atol: 1e-5 * max(scale, 1), "folded outputs")
    }

    @Test func quantizationCanFoldFirstAndStillSavesAndLoads() throws {
        let model = try TestModels.batchNormNetwork()
        var config = PTQConfiguration(weightBits: 8, activationBits: 8)
        config.foldBatchNorm = true
        let q = try PTQCalibrator(configuration: config).quantize(
            model, calibration: QuantizationTests.samples(16, seed: 6))
        #expect(q.model.batchNormLayers.isEmpty)
        let test = QuantizationTests.samples(8, seed: 7)
        let reference = try QuantizationTests.outputs(model, test), out = try QuantizationTests.outputs(q.model, test)
        #expect(zip(out, reference).map { abs($0 - $1) }.max()! < 0.1)
        let folder = try TemporaryFolder("dsg-fold")
        let url = folder.file("folded.safetensors")
        try q.save(to: url)
        #expect(try QuantizationTests.outputs(QuantizedModel.load(from: url, architecture: model).model, test) == out)
    }
}

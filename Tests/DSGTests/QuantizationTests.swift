import DSG
import Foundation
import DSGTestSupport
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
        #expect(throws: QuantizationError.bitWidth(1, what: "weight")) { try PTQCalibrator(configuration: PTQConfiguration(weightBits: 1, activationBits: 4)) }
        #expect(throws: QuantizationError.bitWidth(9, what: "activation")) { try PTQCalibrator(configuration: PTQConfiguration(weightBits: 4, activationBits: 9)) }
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
            let q = try PTQCalibrator(configuration: PTQConfiguration(weightBits: bits, activationBits: bits)).quantize(model, calibration: calibration)
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
        #expect(errors[0] < 0.05 && errors[0] < errors[1] && errors[1] < errors[2], "max output error at 8, 4, 2 bits: \(errors)")
        // The float model is untouched.
        #expect(try Self.outputs(model, test) == reference)
    }

    @Test(arguments: PTQConfiguration.ActivationCalibration.allCases)
    func calibrationMethodsGiveSensibleRanges(_ method: PTQConfiguration.ActivationCalibration) throws {
        let model = try TestModels.batchNormNetwork()
        var config = PTQConfiguration(weightBits: 8, activationBits: 8)
        config.activationCalibration = method
        config.batchSize = 10  // three full batches and a short one
        let q = try PTQCalibrator(configuration: config).quantize(model, calibration: Self.samples(32, seed: 3))
        var minMax = config
        minMax.activationCalibration = .minMax
        let reference = try PTQCalibrator(configuration: minMax).quantize(model, calibration: Self.samples(32, seed: 3))
        for name in ["relu1.quant.range", "relu2.quant.range"] {
            let r = try q.model.tensor(named: name).scalars, m = try reference.model.tensor(named: name).scalars
            #expect(r[0] == 0 && r[1] > 0 && r[1] <= m[1] + 1e-6, "\(method) \(name): \(r) vs min/max \(m)")
        }
    }

    @Test func savesAndLoads() throws {
        let model = try TestModels.batchNormNetwork()
        var config = PTQConfiguration(weightBits: 4, activationBits: 6)
        config.weightRange = .mse
        config.edgeLayers = .eightBit
        let q = try PTQCalibrator(configuration: config).quantize(model, calibration: Self.samples(16, seed: 4))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-q-\(UUID().uuidString).safetensors")
        try q.save(to: url)
        let back = try QuantizedModel.load(from: url, architecture: model)
        #expect(back.configuration == config)
        let test = Self.samples(8, seed: 5)
        #expect(try Self.outputs(back.model, test) == Self.outputs(q.model, test))
        // A float model's file is not a quantized model.
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-f-\(UUID().uuidString).safetensors")
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
        #expect(zip(e.output().scalars, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(e.output().scalars)")
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
        for _ in 0..<3 { try warm.forward([g.normalTensor([8, 1, 28, 28], mean: 0.3, standardDeviation: 1.5)], training: true) }
        for t in model.tensors where t.name.hasSuffix("bn1.weight") || t.name.hasSuffix("bn2.bias") {
            try model.setTensor(named: t.name, to: g.uniformTensor(t.tensor.shape, 0.5, 1.5))
        }
        let folded = try BatchNormFolding.fold(model)
        #expect(folded.batchNormLayers.isEmpty)
        #expect(folded.nodes.count == model.nodes.count - 21)
        let x = g.normalTensor([4, 1, 28, 28])
        let a = try QuantizationTests.outputs(model, x), b = try QuantizationTests.outputs(folded, x)
        let scale = Double(a.map { abs($0) }.max()!)
        #expect(zip(a, b).allSatisfy { Double(abs($0 - $1)) < 1e-5 * max(scale, 1) }, "max difference \(zip(a, b).map { abs($0 - $1) }.max()!)")
    }

    @Test func quantizationCanFoldFirstAndStillSavesAndLoads() throws {
        let model = try TestModels.batchNormNetwork()
        var config = PTQConfiguration(weightBits: 8, activationBits: 8)
        config.foldBatchNorm = true
        let q = try PTQCalibrator(configuration: config).quantize(model, calibration: QuantizationTests.samples(16, seed: 6))
        #expect(q.model.batchNormLayers.isEmpty)
        let test = QuantizationTests.samples(8, seed: 7)
        let reference = try QuantizationTests.outputs(model, test), out = try QuantizationTests.outputs(q.model, test)
        #expect(zip(out, reference).map { abs($0 - $1) }.max()! < 0.1)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-fold-\(UUID().uuidString).safetensors")
        try q.save(to: url)
        #expect(try QuantizationTests.outputs(QuantizedModel.load(from: url, architecture: model).model, test) == out)
    }
}

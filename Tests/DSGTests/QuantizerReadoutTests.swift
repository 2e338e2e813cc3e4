import DSG
import DSGTestSupport
import Testing

/// What a quantizer and a quantized model tell about themselves: `UniformQuantizer.stepSize` and
/// `QuantizedModel.activations`.
@Suite("Quantizer read-outs")
struct QuantizerReadoutTests {
    @Test(arguments: [(Float(-1), Float(3)), (0, 6), (-0.5, 0.25), (2, 2.001)])
    func stepSizeIsTheWidthOfOneLevel(low: Float, high: Float) {
        for bits in UniformQuantizer.bitRange {
            let q = UniformQuantizer(bits: bits, low: low, high: high)
            #expect(q.stepSize == 1 / q.levelsPerUnit)
            // 2^k levels span the range in 2^k − 1 steps (ONNX's and PyTorch's `scale`).
            let expected = (Double(high) - Double(low)) / Double((1 << bits) - 1)
            #expect(abs(Double(q.stepSize) - expected) <= 1e-6 * expected, "\(bits) bits on \(low)...\(high)")
        }
    }

    @Test func anEmptyRangeHasTheSmallestStep() {
        // The width is floored at 1e-8 so that a constant activation does not divide by zero.
        let q = UniformQuantizer(bits: 4, low: 1, high: 1)
        #expect(abs(Double(q.stepSize) - 1e-8 / 15) <= 1e-6 * 1e-8 / 15)
    }

    /// Two activations (a ReLU, then a ReLU6 inside a dotted block name) whose graph order is not their
    /// alphabetical order, and a LeakyReLU, which is not quantized.
    static func model() throws -> Model {
        var b = ModelBuilder(seed: 3)
        let x = b.input("image", [1, 6, 6])
        b.prefix = "stem."
        var h = try b.conv2d(x, "conv", outChannels: 3, kernel: 3, padding: 1)
        h = try b.relu(try b.batchNorm(h, "bn"), "relu")
        b.prefix = "block.a."
        h = try b.batchNorm(try b.conv2d(h, "conv", outChannels: 3, kernel: 3, padding: 1), "bn")
        h = try b.activation(try b.activation(h, .leakyReLU(slope: 0.1), "leaky"), .relu6, "relu6")
        b.prefix = ""
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return b.finish(outputs: [try b.linear(h, "fc", outFeatures: 2)])
    }

    @Test func activationRangesNameEachActivationInGraphOrder() throws {
        var random = SeededRandom(seed: 5)
        let quantized = try PTQCalibrator(configuration: PTQConfiguration())
            .quantize(try Self.model(), calibration: random.normalTensor([6, 1, 6, 6]))
        let ranges = quantized.activations
        #expect(ranges.map(\.activation) == ["stem.relu", "block.a.relu6"])
        for r in ranges {
            let stored = try quantized.model.tensor(named: r.activation + ".quant.range").scalars
            #expect([r.low, r.high] == stored)
            #expect(r.high > r.low, "\(r.activation) was calibrated")
        }
        // The read-out follows the tensor, not a copy made at calibration.
        try quantized.model.setTensor(
            named: "block.a.relu6.quant.range", to: Tensor(shape: [2], scalars: [-1.5, 2.25]))
        #expect(quantized.activations.last.map { [$0.low, $0.high] } == [-1.5, 2.25])
    }

    @Test func theSmallBatchNormNetworkHasTwoRanges() throws {
        var random = SeededRandom(seed: 7)
        let quantized = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 8, activationBits: 8))
            .quantize(try TestModels.batchNormNetwork(), calibration: random.normalTensor([4, 1, 8, 8]))
        let ranges = quantized.activations
        #expect(ranges.map(\.activation) == ["relu1", "relu2"])
        let stored = try ["relu1", "relu2"].map { try quantized.model.tensor(named: $0 + ".quant.range").scalars }
        #expect(ranges.map { [$0.low, $0.high] } == stored)
    }

    /// The weight quantizers a quantized model keeps: one per output channel of every quantized layer, each
    /// weight on its grid, saved and loaded with the model.
    @Test func weightQuantizersAreKeptAndSaved() throws {
        var random = SeededRandom(seed: 9)
        var configuration = PTQConfiguration(weightBits: 3, activationBits: 8)
        configuration.edgeLayers = .fullPrecision
        let model = try Self.model()
        let quantized = try PTQCalibrator(configuration: configuration)
            .quantize(model, calibration: random.normalTensor([4, 1, 6, 6]))
        // The first and last layers stay Float32: only block.a.conv is quantized.
        #expect(quantized.weights.map(\.layer) == ["block.a.conv"])
        let record = try #require(quantized.weights.first)
        let weight = try quantized.model.tensor(named: "block.a.conv.weight")
        let original = try model.tensor(named: "block.a.conv.weight")
        #expect(record.bits == 3 && record.quantizers.count == weight.shape[0])
        let size = weight.elementCount / weight.shape[0]
        for (o, q) in record.quantizers.enumerated() {
            let row = Array(weight.scalars[(o * size)..<((o + 1) * size)])
            let float = Array(original.scalars[(o * size)..<((o + 1) * size)])
            #expect(row.map(q.callAsFunction) == row, "row \(o) lies on its grid")
            #expect(float.map(q.callAsFunction) == row, "row \(o) is its float row quantized")
            #expect(q == UniformQuantizer(bits: 3, low: float.min()!, high: float.max()!))
        }
        let folder = try TemporaryFolder("quantizers")
        try quantized.save(to: folder.file("q.safetensors"))
        let loaded = try QuantizedModel.load(from: folder.file("q.safetensors"), architecture: model)
        #expect(loaded.weights == quantized.weights)
        #expect(loaded.activations == quantized.activations)
        #expect(quantized.activations.map(\.node) == ["stem.relu.quant", "block.a.relu6.quant"])
        #expect(quantized.activations.allSatisfy { $0.bits == 8 })
    }
}

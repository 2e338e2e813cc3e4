import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGONNX

/// Quantized models written in QDQ form: what the file holds is the quantized model's arithmetic in ONNX's
/// convention. (onnxruntime running the files is checked by `.ci/onnxruntime.sh`.)
@Suite("ONNX QDQ export")
struct QDQExportTests {
    static func quantized(bits: Int) throws -> QuantizedModel {
        var random = SeededRandom(seed: 4)
        return try PTQCalibrator(configuration: PTQConfiguration(weightBits: bits, activationBits: bits))
            .quantize(try TestModels.batchNormNetwork(), calibration: random.normalTensor([8, 1, 8, 8]))
    }

    static func graph(_ q: QuantizedModel) throws -> Onnx_GraphProto {
        try Onnx_ModelProto(serializedBytes: try ONNXExport.data(of: q.model, quantization: try q.onnxQuantization))
            .graph
    }

    static func initializer(_ g: Onnx_GraphProto, _ name: String) throws -> Onnx_TensorProto {
        try #require(g.initializer.first { $0.name == name }, "initializer \(name)")
    }

    /// ONNX's QuantizeLinear then DequantizeLinear, as the specification computes it.
    static func quantizeDequantize(_ x: Float, _ a: ONNXQuantization.Activation) -> Float {
        var v = x
        if let clip = a.clip { v = min(max(v, clip.low), clip.high) }
        let (low, high) = a.signed ? (-128, 127) : (0, 255)
        let q = min(max(Int((v / a.scale).rounded(.toNearestOrEven)) + a.zeroPoint, low), high)
        return Float(q - a.zeroPoint) * a.scale
    }

    @Test(arguments: [8, 3])
    func weightsAndActivationsAreTheQuantizedModels(bits: Int) throws {
        let q = try Self.quantized(bits: bits)
        let g = try Self.graph(q)
        let kinds = g.node.map(\.opType)
        // Every weight dequantized per channel, every activation quantizer a QuantizeLinear/DequantizeLinear pair
        // (clipped to its k-bit grid first below 8 bits).
        #expect(kinds.filter { $0 == "DequantizeLinear" }.count == q.weights.count + q.activations.count)
        #expect(kinds.filter { $0 == "QuantizeLinear" }.count == q.activations.count)
        #expect(kinds.filter { $0 == "Clip" }.count == (bits < 8 ? q.activations.count : 0))
        for record in q.weights {
            let ints = try Self.initializer(g, record.layer + ".weight_quantized")
            let scales = try Self.initializer(g, record.layer + ".weight_scale").floats()
            let zeros = try Self.initializer(g, record.layer + ".weight_zero_point")
            #expect(ints.dataType == ONNXDataType.int8 && zeros.dataType == ONNXDataType.int8)
            let values = ints.rawData.map { Int(Int8(bitPattern: $0)) },
                zeroPoints = zeros.rawData.map { Int(Int8(bitPattern: $0)) }
            let w = try q.model.tensor(named: record.layer + ".weight").scalars
            let size = w.count / scales.count
            let dequantized = values.indices.map { Float(values[$0] - zeroPoints[$0 / size]) * scales[$0 / size] }
            expectClose(dequantized, w, rtol: 1e-6, atol: 0, "\(record.layer) dequantized")
            #expect(values.allSatisfy { (-(1 << (bits - 1))...((1 << (bits - 1)) - 1)).contains($0) })
        }
        // The QDQ pair computes the fake-quantization node's function: the same level but for the rare value
        // within rounding of a level's edge (ONNX divides by the step, the quantizer multiplies by its inverse),
        // and the same value up to the last bits (ONNX multiplies the level by the step, the quantizer divides).
        let description = try q.onnxQuantization
        var random = SeededRandom(seed: 5)
        for a in q.activations {
            let onnx = try #require(description.activations[a.node])
            #expect(!onnx.signed && onnx.zeroPoint == 0, "a ReLU's range starts at 0")
            let xs = random.normalTensor([4000], mean: a.high / 2, standardDeviation: a.high).scalars
            let gaps = xs.map { abs(Self.quantizeDequantize($0, onnx) - a.quantizer($0)) }
            #expect(gaps.filter { $0 > 1e-6 * a.high }.count <= 4, "\(a.node): values on another level")
            #expect(gaps.allSatisfy { $0 <= 1.0001 * onnx.scale }, "\(a.node): at most one level apart")
        }
    }

    /// A channel whose weights are all positive cannot hold its zero point in INT8 at 8 bits: the layer is
    /// written as INT32 levels relative to the zero point instead, the same values.
    @Test func aRangeWithoutZeroFallsBackToInt32Weights() throws {
        let q = try Self.quantized(bits: 8)
        var model = q.model
        let w = try model.tensor(named: "fc.weight")
        let shifted = Tensor(shape: w.shape, scalars: w.scalars.map { abs($0) + 0.5 })
        model = model.copy()
        try model.setTensor(named: "fc.weight", to: shifted)
        let quantizers = (0..<w.shape[0]).map { o in
            let row = shifted.scalars[(o * w.shape[1])..<((o + 1) * w.shape[1])]
            return UniformQuantizer(bits: 8, low: row.min()!, high: row.max()!)
        }
        try model.setTensor(
            named: "fc.weight",
            to: Tensor(shape: w.shape, scalars: shifted.scalars.enumerated().map { quantizers[$0 / w.shape[1]]($1) }))
        let records = q.weights.map {
            $0.layer == "fc" ? WeightQuantization(layer: "fc", bits: 8, quantizers: quantizers) : $0
        }
        let fallback = QuantizedModel(model: model, configuration: q.configuration, weights: records)
        let weight = try #require(try fallback.onnxQuantization.weights["fc"])
        #expect(weight.zeroPoints == nil)
        let scales = weight.scales, size = w.shape[1]
        let dequantized = weight.values.indices.map { Float(weight.values[$0]) * scales[$0 / size] }
        expectClose(dequantized, try model.tensor(named: "fc.weight").scalars, rtol: 1e-6, atol: 0, "INT32 levels")
        let g = try Self.graph(fallback)
        #expect(try Self.initializer(g, "fc.weight_quantized").dataType == ONNXDataType.int32)
        #expect(g.initializer.allSatisfy { $0.name != "fc.weight_zero_point" })
    }

    @Test func anActivationRangeFarFromZeroIsRefused() throws {
        var b = ModelBuilder(seed: 2)
        let x = b.input("image", [1, 4, 4])
        let model = b.finish(outputs: [try b.activation(x, .clip(lower: 2, upper: 3), "clip")])
        let samples = Tensor(shape: [2, 1, 4, 4], scalars: (0..<32).map { Float($0) / 8 })
        // Calibration ranges hold 0; one learned by reconstruction (LSQ moves both ends) or read from a file need not.
        let q = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 8, activationBits: 8)).quantize(
            model, calibration: samples)
        _ = try q.onnxQuantization
        try q.model.setTensor(named: "clip.quant.range", to: Tensor(shape: [2], scalars: [2, 3]))
        #expect(throws: QuantizationError.zeroPointRange(node: "clip.quant")) { try q.onnxQuantization }
    }

    /// The integer-kernel scheme: BatchNorm folded, a quantizer also on every convolution output that feeds a
    /// residual sum, biases on the grid of input step × weight step, written as INT32.
    @Test func theIntegerKernelSchemeQuantizesWhatIntegerOperatorsNeed() throws {
        var configuration = PTQConfiguration(weightBits: 8, activationBits: 8)
        configuration.integerKernels = true
        var random = SeededRandom(seed: 6)
        let model = try DSG.defaultModel()
        let q = try PTQCalibrator(configuration: configuration)
            .quantize(model, calibration: random.normalTensor([4, 1, 28, 28]))
        #expect(!q.model.nodes.contains { $0.op is BatchNormOp })
        // 19 ReLUs, the second convolution of each of the 9 blocks and the 2 projection shortcuts.
        let followed = Set(q.activations.map(\.activation))
        #expect(q.activations.count == 19 + 9 + 2)
        #expect(followed.isSuperset(of: ["stage1.block0.conv2", "stage2.block0.shortcut.conv", "stage3.block2.conv2"]))
        #expect(!followed.contains("stage1.block0.conv1"), "a convolution a ReLU follows is quantized after the ReLU")
        let description = try q.onnxQuantization
        for record in q.weights {
            let input = try #require(q.model.nodes.first { $0.name == record.layer }).inputs[0]
            guard let steps = record.biasSteps else {
                // The stem reads the image and the classifier pooled features, neither quantized.
                #expect(["conv1", "fc"].contains(record.layer), "\(record.layer) keeps a Float32 bias")
                continue
            }
            let source = try #require(q.activations.first { $0.node == q.model.node(producing: input)?.name })
            #expect(steps == record.quantizers.map { source.quantizer.stepSize * $0.stepSize })
            // The INT32 bias an integer kernel adds is the model's bias exactly.
            let bias = try q.model.tensor(named: record.layer + ".bias").scalars
            let integer = try #require(description.weights[record.layer]?.bias)
            #expect(integer.scales == steps)
            #expect(zip(integer.values, zip(steps, bias)).allSatisfy { Float($0) * $1.0 == $1.1 }, "\(record.layer)")
        }
        let g = try Self.graph(q)
        #expect(g.node.filter { $0.opType == "QuantizeLinear" }.count == 30)
        let biases = g.initializer.filter { $0.name.hasSuffix(".bias_quantized") }
        #expect(biases.count == q.weights.count - 2 && biases.allSatisfy { $0.dataType == ONNXDataType.int32 })
        #expect(
            g.initializer.filter { $0.name.hasSuffix(".weight_quantized") }.allSatisfy {
                $0.dataType == ONNXDataType.int8
            })
        // Saved and loaded, the scheme comes back with its extra quantizers.
        let folder = try TemporaryFolder("integer")
        try q.save(to: folder.file("q.safetensors"))
        let loaded = try QuantizedModel.load(from: folder.file("q.safetensors"), architecture: model)
        #expect(
            loaded.configuration.integerKernels && loaded.activations == q.activations && loaded.weights == q.weights)
    }

    /// Found by review: what no ONNX integer holds is refused by name, never wrapped or trapped on.
    @Test func unrepresentableQuantizersAreRefused() throws {
        let q = try Self.quantized(bits: 8)
        let unsaved = QuantizedModel(model: q.model, configuration: q.configuration, weights: [])
        #expect(
            throws: QuantizationError.notExportable(
                node: "conv1", reason: "the file was saved without its weight quantizers; quantize it again")
        ) { try unsaved.onnxQuantization }
        var description = try q.onnxQuantization
        let a = try #require(description.activations["relu1.quant"])
        description.activations["relu1.quant"] = .init(scale: a.scale, zeroPoint: 300, signed: false, clip: nil)
        #expect(
            throws: ONNXExportError.quantization(node: "relu1.quant.zero_point", reason: "300 is outside UINT8")
        ) { try ONNXExport.data(of: q.model, quantization: description) }
        // A quantizer read from a damaged file.
        let bad = Data(#"{"bits": 9, "levelsPerUnit": 1, "zeroPoint": 0}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(UniformQuantizer.self, from: bad) }
    }

    /// Integer kernels need INT8 weight zero points, so their weight ranges hold zero even when a channel's weights
    /// all have one sign (EfficientNet's depthwise kernels with BatchNorm folded in): INT8 weights, no INT32.
    @Test func integerKernelWeightRangesHoldZero() throws {
        var b = ModelBuilder(seed: 4)
        let x = b.input("image", [1, 6, 6])
        let h = try b.relu(try b.conv2d(x, "conv", outChannels: 2, kernel: 3, padding: 1), "relu")
        let model = b.finish(outputs: [try b.conv2d(h, "head", outChannels: 3, kernel: 1, bias: true)])
        let w = try model.tensor(named: "conv.weight")
        try model.setTensor(named: "conv.weight", to: Tensor(shape: w.shape, scalars: w.scalars.map { abs($0) + 0.2 }))
        var configuration = PTQConfiguration(weightBits: 8, activationBits: 8)
        configuration.integerKernels = true
        var random = SeededRandom(seed: 1)
        let q = try PTQCalibrator(configuration: configuration).quantize(
            model, calibration: random.normalTensor([2, 1, 6, 6]))
        let quantizers = try #require(q.weights.first { $0.layer == "conv" }).quantizers
        #expect(quantizers.allSatisfy { $0(0) == 0 }, "zero is a level")
        #expect(try q.onnxQuantization.weights["conv"]?.zeroPoints != nil, "INT8 weights with zero points")
    }

    /// A residual sum that no activation follows (MobileNet's and EfficientNet's blocks) is quantized in the
    /// integer-kernel scheme, so the next convolution reads integers (QLinearAdd, then QLinearConv); the sum that
    /// a ReLU takes (ResNet's) is quantized after the ReLU only.
    @Test func integerKernelsQuantizeSumsThatFeedTheNextBlock() throws {
        var b = ModelBuilder(seed: 5)
        let x = b.input("image", [2, 6, 6])
        let h = try b.relu(try b.conv2d(x, "expand", outChannels: 2, kernel: 1), "relu")
        let sum = try b.addValues([try b.conv2d(h, "project", outChannels: 2, kernel: 1), h], "sum")
        let next = try b.relu(
            try b.addValues([try b.conv2d(sum, "conv", outChannels: 2, kernel: 1), sum], "sum2"), "relu2")
        let model = b.finish(outputs: [try b.conv2d(next, "head", outChannels: 3, kernel: 1, bias: true)])
        var random = SeededRandom(seed: 2)
        let samples = random.normalTensor([2, 2, 6, 6])
        for (integer, expected) in [(true, ["relu", "project", "sum", "conv", "relu2"]), (false, ["relu", "relu2"])] {
            var configuration = PTQConfiguration(weightBits: 8, activationBits: 8)
            configuration.integerKernels = integer
            let q = try PTQCalibrator(configuration: configuration).quantize(model, calibration: samples)
            #expect(q.activations.map(\.activation) == expected)
        }
    }

    /// A convolution whose output is the model's (a fully convolutional head) keeps Float32 logits.
    @Test func integerKernelsLeaveTheLogitsInFloat32() throws {
        var b = ModelBuilder(seed: 3)
        let x = b.input("image", [1, 6, 6])
        let h = try b.relu(try b.conv2d(x, "conv", outChannels: 2, kernel: 3, padding: 1), "relu")
        let model = b.finish(outputs: [try b.conv2d(h, "head", outChannels: 3, kernel: 1, bias: true)])
        var configuration = PTQConfiguration(weightBits: 8, activationBits: 8)
        configuration.integerKernels = true
        var random = SeededRandom(seed: 1)
        let q = try PTQCalibrator(configuration: configuration).quantize(
            model, calibration: random.normalTensor([2, 1, 6, 6]))
        #expect(q.activations.map(\.activation) == ["relu"])
        #expect(q.weights.first { $0.layer == "head" }?.biasSteps != nil, "its input is quantized: an INT32 bias")
    }

    /// Max pooling keeps values on their grid (ResNet-18's stem): the convolution after it still gets its bias
    /// on the grid of the quantizer before the pooling.
    @Test func theBiasGridLooksThroughMaxPooling() throws {
        var b = ModelBuilder(seed: 3)
        let x = b.input("image", [1, 8, 8])
        var h = try b.relu(try b.conv2d(x, "stem", outChannels: 2, kernel: 3, padding: 1, bias: true), "relu")
        h = try b.maxPool(h, "pool", kernel: 2, stride: 2)
        h = try b.relu(try b.conv2d(h, "conv", outChannels: 2, kernel: 3, padding: 1, bias: true), "relu2")
        let model = b.finish(outputs: [try b.linear(try b.flatten(h, "flat"), "fc", outFeatures: 2)])
        var configuration = PTQConfiguration(weightBits: 8, activationBits: 8)
        configuration.integerKernels = true
        var random = SeededRandom(seed: 2)
        let q = try PTQCalibrator(configuration: configuration).quantize(
            model, calibration: random.normalTensor([2, 1, 8, 8]))
        let input = try #require(q.activations.first { $0.activation == "relu" }).quantizer.stepSize
        let conv = try #require(q.weights.first { $0.layer == "conv" })
        #expect(conv.biasSteps == conv.quantizers.map { input * $0.stepSize })
        #expect(q.weights.first { $0.layer == "fc" }?.biasSteps != nil, "through the flattening reshape too")
    }

    /// Symmetric weight ranges put every weight zero point at 0, as some runtimes require.
    @Test(arguments: [8, 4])
    func symmetricWeightsHaveZeroZeroPoints(bits: Int) throws {
        var configuration = PTQConfiguration(weightBits: bits, activationBits: 8)
        configuration.weightRange = .symmetric
        var random = SeededRandom(seed: 8)
        // One all-zero output channel (a pruned filter) must keep the zero point 0 too.
        let model = try TestModels.batchNormNetwork()
        let w = try model.tensor(named: "conv1.weight")
        let size = w.elementCount / w.shape[0]
        try model.setTensor(
            named: "conv1.weight",
            to: Tensor(shape: w.shape, scalars: w.scalars.enumerated().map { $0.offset < size ? 0 : $0.element }))
        let q = try PTQCalibrator(configuration: configuration)
            .quantize(model, calibration: random.normalTensor([4, 1, 8, 8]))
        let description = try q.onnxQuantization
        #expect(description.weights.count == 3)
        #expect(description.weights.values.allSatisfy { $0.zeroPoints?.allSatisfy { $0 == 0 } == true })
        // Each channel's largest magnitude is a level (±(2^(k−1) − 1)), so it is not clipped.
        let h = 1 << (bits - 1)
        for record in q.weights {
            let levels = try #require(description.weights[record.layer]).values
            let size = levels.count / record.quantizers.count
            #expect(levels.allSatisfy { (-(h - 1)...(h - 1)).contains($0) }, "no level -2^(k-1): \(record.layer)")
            for (o, quantizer) in record.quantizers.enumerated() where quantizer.stepSize > 1e-6 {
                #expect(levels[(o * size)..<((o + 1) * size)].map(abs).max() == h - 1, "\(record.layer) \(o)")
            }
        }
    }
}

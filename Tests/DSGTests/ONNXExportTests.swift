import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGONNX

/// Models written as ONNX and read back: the same graph, the same tensors, the same outputs to the last bit.
/// (onnxruntime's reading of the same files is checked by `.ci/onnxruntime.sh`.)
@Suite("ONNX export")
struct ONNXExportTests {
    /// Values in [-2, 2) for `[n, shape...]`.
    static func input(_ n: Int, _ shape: Shape) -> Tensor {
        let count = n * shape.elementCount
        return Tensor(
            shape: Shape([n] + shape.dimensions), scalars: (0..<count).map { Float(($0 * 53) % 97) / 97 * 4 - 2 })
    }

    static func outputs(_ model: Model, _ x: Tensor) throws -> [Float] {
        let executor = try GraphExecutor(model: model, batchSize: x.shape[0], backward: false)
        try executor.forward([x], training: false)
        return executor.output().scalars
    }

    /// Exports `model`, imports the file, and expects the import to compute exactly what the model does on a
    /// batch of 3; returns the import.
    @discardableResult
    static func roundTrip(_ model: Model, sourceLocation: SourceLocation = #_sourceLocation) throws -> Model {
        let data = try ONNXExport.data(of: model)
        let proto = try Onnx_ModelProto(serializedBytes: data)
        let back = try ONNXImport.model(from: proto, file: "export.onnx", requireBatchNorm: false)
        let x = input(3, model.inputs[0].shape)
        #expect(back.inputs.map(\.shape) == model.inputs.map(\.shape), sourceLocation: sourceLocation)
        #expect(try outputs(back, x) == outputs(model, x), "outputs", sourceLocation: sourceLocation)
        return back
    }

    @Test func theEmbeddedModelComesBackNodeForNodeAndBitForBit() throws {
        let model = try DSG.defaultModel()
        let back = try Self.roundTrip(model)
        #expect(back.nodes.map(\.name) == model.nodes.map(\.name))
        #expect(back.nodes.map(\.op.kind) == model.nodes.map(\.op.kind))
        #expect(back.tensors.map(\.name) == model.tensors.map(\.name))
        for t in model.tensors { #expect(try back.tensor(named: t.name).scalars == t.tensor.scalars, "\(t.name)") }
        let proto = try Onnx_ModelProto(serializedBytes: try ONNXExport.data(of: model))
        #expect(proto.opsetImport.map(\.version) == [13] && proto.irVersion == 7)
    }

    @Test func importedFixturesComeBack() throws {
        for name in ["squeeze-excite.onnx", "same-padding.onnx"] {
            try Self.roundTrip(try Model.load(contentsOf: try ONNXImportTests.fixture(name)))
        }
    }

    /// Every operator the exporter writes, in one graph with non-trivial tensors.
    @Test func everyOperatorComesBack() throws {
        var b = ModelBuilder(seed: 7)
        let x = b.input("image", [4, 9, 9])
        var h = try b.conv2d(
            x, "conv", outChannels: 6, kernel: 3, stride: 2, padding: 2, dilation: 2, groups: 2, bias: true)
        h = try b.batchNorm(h, "bn", epsilon: 1e-3, momentum: 0.2, affine: false)
        let branches = try [
            b.activation(h, .leakyReLU(slope: 0.1), "leaky"), b.activation(h, .tanh, "tanh"),
            b.activation(h, .sigmoid, "sigmoid"), b.activation(h, .hardSigmoid(alpha: 0.3, beta: 0.4), "hsig"),
            b.activation(h, .relu6, "relu6"), b.activation(h, .clip(lower: -0.5, upper: 0.25), "clip"),
        ]
        h = try b.addValues(branches, "sum")
        let gate = try b.globalAvgPool(h, "pool")
        h = try b.add(ChannelMultiplyOp(), "gate", [h, gate])
        h = try b.add(ChannelAddOp(), "shift", [h, gate])
        h = try b.add(ScaleOp(1.5), "scale", [h])
        h = try b.add(BiasOp(channels: 6), "bias", [h])
        h = try b.add(PadOp(top: 0, bottom: 1, left: 2, right: 1, value: -0.25), "pad", [h])
        let m = try b.maxPool(h, "max", kernel: 3, stride: 2, padding: 1)
        let a = try b.avgPool(h, "avg", kernel: 3, stride: 2, padding: 1)
        h = try b.add(ConcatOp(), "concat", [m, a])
        h = try b.add(MultiplyOp(), "square", [h, h])
        h = try b.flatten(h, "flat")
        h = try b.linear(h, "fc", outFeatures: 5, bias: false)
        let model = b.finish(outputs: [h])
        for t in model.tensors {
            let values = (0..<t.tensor.elementCount).map { Float(($0 * 31) % 17) / 17 - 0.4 }
            let positive = t.name.hasSuffix("running_var") ? values.map { $0 + 1 } : values
            try model.setTensor(named: t.name, to: Tensor(shape: t.tensor.shape, scalars: positive))
        }
        let back = try Self.roundTrip(model)
        // A BatchNorm without affine parameters comes back with explicit ones and zeros.
        #expect(try back.tensor(named: "bn.weight").scalars == Array(repeating: 1, count: 6))
        let bn = try #require(back.nodes.first { $0.name == "bn" }?.op as? BatchNormOp)
        // Training settings, which evaluation does not show (momentum comes back through 1 - m, within rounding).
        #expect(abs(bn.momentum - 0.2) < 1e-6 && bn.epsilon == 1e-3)
        #expect(back.nodes.map(\.op.kind).filter { $0 == "Add" }.count == 5)  // the six-way sum as five Adds
    }

    @Test func hardSwishNeedsOperatorSet14() throws {
        var b = ModelBuilder(seed: 1)
        let x = b.input("image", [2, 3, 3])
        let model = b.finish(outputs: [try b.activation(x, .hardSwish, "hswish")])
        try Self.roundTrip(model)
        let proto = try Onnx_ModelProto(serializedBytes: try ONNXExport.data(of: model))
        #expect(proto.opsetImport.map(\.version) == [14])
    }

    @Test func operatorsWithoutAnONNXFormAreNamed() throws {
        var b = ModelBuilder(seed: 1)
        let x = b.input("image", [2, 3, 3])
        let upsampling = b.finish(outputs: [try b.add(UpsampleNearest2xOp(), "up", [x])])
        #expect(throws: ONNXExportError.unsupportedOperator(node: "up", kind: "UpsampleNearest2x")) {
            try ONNXExport.data(of: upsampling)
        }
        let generator = try Generator(imageShape: [1, 8, 8], classes: 10, latentDimension: 8)
        #expect(throws: ONNXExportError.graphShape(reason: "2 inputs and 1 outputs, not one each")) {
            try ONNXExport.data(of: generator.model)
        }
        let quantized = try PTQCalibrator(configuration: PTQConfiguration(weightBits: 8, activationBits: 8))
            .quantize(try DSG.defaultModel(), calibration: Self.input(2, [1, 28, 28]))
        #expect(throws: ONNXExportError.unsupportedOperator(node: "relu1.quant", kind: "FakeQuant")) {
            try ONNXExport.data(of: quantized.model)
        }
    }

    @Test func theFileIsWrittenWholeOrNotAtAll() throws {
        let folder = try TemporaryFolder("export")
        let url = folder.file("model.onnx")
        try ONNXExport.write(try DSG.defaultModel(), to: url)
        #expect(try Model.load(contentsOf: url).nodes.count == (try DSG.defaultModel()).nodes.count)
        let missing = folder.file("no/such/folder/model.onnx")
        #expect(throws: ONNXExportError.self) { try ONNXExport.write(try DSG.defaultModel(), to: missing) }
        #expect(!FileManager.default.fileExists(atPath: missing.path))
    }
}

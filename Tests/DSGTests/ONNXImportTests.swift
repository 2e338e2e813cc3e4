import DSG
import DSGTestSupport
import Foundation
import Testing

/// ONNX files exported by PyTorch (Tests/DSGTests/Fixtures/onnx/export_fixtures.py) become the same model.
@Suite("ONNX import")
struct ONNXImportTests {
    static func fixture(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/onnx") else {
            throw FixtureError.missing(name)
        }
        return url
    }

    /// The hashed input of the export script (`1.5 · hash_uniform(2001, i)`), `[4, 1, 28, 28]`.
    static func input() -> Tensor {
        Tensor(
            shape: [4, 1, 28, 28], scalars: (0..<(4 * 784)).map { Float(1.5 * HashedWeights.hashUniform(2001, $0)) })
    }

    @Test func theEmbeddedResNet20ExportedByPyTorchMatchesItsLogitsAndInputGradient() throws {
        let model = try Model.load(contentsOf: try Self.fixture("resnet20-fashion-mnist.onnx"))
        let json = try Data(contentsOf: try Self.fixture("resnet20-fashion-mnist.json"))
        let golden = Fixture(try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:])
        #expect(model.inputs.map(\.shape) == [[1, 28, 28]])
        #expect(model.shape(of: model.outputs[0]) == [10])
        #expect(model.batchNormLayers.count == 21)
        // Parameters keep PyTorch's names, so the import has the embedded model's tensors exactly.
        let embedded = try DSG.defaultModel()
        for t in embedded.stateDict {
            #expect(try model.tensor(named: t.name).scalars == t.tensor.scalars, "\(t.name)")
        }
        let executor = try GraphExecutor(model: model, batchSize: 4)
        executor.inputsRequireGradient = [true]
        try executor.forward([Self.input()], training: false)
        let logits = executor.output().scalars
        #expect(maxRelativeError(logits, golden.floats("logits"), floor: 1) < 1e-4)
        // The input gradient of sum(logits · r), which DSG's image optimisation needs.
        executor.zeroGradients()
        let r = (0..<40).map { Float(HashedWeights.hashUniform(2002, $0)) }
        let seed = executor.gradient(of: model.outputs[0])
        for i in seed.indices { seed[i] = r[i] }
        executor.backward(parameterGradients: false)
        let inputGradient = Array(executor.gradient(of: ValueID(index: 0)))
        let expected = golden.floats("input_grad")
        let scale = Double(expected.map { abs($0) }.max() ?? 0)
        #expect(scale > 0)
        expectClose(inputGradient, expected, rtol: 0, atol: 1e-4 * scale, "input gradient")
    }

    @Test func theImportEvaluatesLikeTheEmbeddedModel() throws {
        let test = try FashionMNIST.load(.test).prefix(500)
        let model = try Model.load(contentsOf: try Self.fixture("resnet20-fashion-mnist.onnx"))
        #expect(try Evaluation.accuracy(of: model, on: test) == Evaluation.accuracy(of: DSG.defaultModel(), on: test))
    }

    @Test func aModelWithBatchNormFoldedIsRefusedWithAdvice() throws {
        let url = try Self.fixture("folded.onnx")
        #expect(throws: ONNXError.foldedBatchNorm(file: "folded.onnx")) { try Model.load(contentsOf: url) }
        #expect(ONNXError.foldedBatchNorm(file: "f").description.contains("training=torch.onnx.TrainingMode.PRESERVE"))
    }

    @Test func bytesThatAreNotONNXAreRefused() throws {
        let data = try Data(contentsOf: try Self.fixture("resnet20-fashion-mnist.onnx"))
        for (what, bytes) in [("truncated", data.prefix(1000)), ("text", Data("hello".utf8)), ("empty", Data())] {
            #expect(throws: ONNXError.self, "\(what)") { try ONNXImport.model(from: bytes, file: "m.onnx") }
        }
    }

    /// A mobile-style network: HardSwish (exported as HardSigmoid and Mul), a squeeze-excite gate (ReduceMean,
    /// 1x1 convolutions, Sigmoid, a per-channel Mul), a scalar Mul, and `x.view(x.size(0), -1)` (Shape, Gather,
    /// Unsqueeze, Concat, Reshape).
    @Test func aSqueezeExciteNetworkMatchesPyTorch() throws {
        let model = try Model.load(contentsOf: try Self.fixture("squeeze-excite.onnx"))
        let json = try Data(contentsOf: try Self.fixture("squeeze-excite.json"))
        let golden = Fixture(try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:])
        #expect(model.inputs.map(\.shape) == [[3, 12, 12]] && model.batchNormLayers.count == 2)
        let kinds = Set(model.nodes.map(\.op.kind))
        #expect(kinds.isSuperset(of: ["Hardsigmoid", "Mul", "ChannelMul", "Scale", "Sigmoid", "GlobalAveragePool"]))
        let executor = try GraphExecutor(model: model, batchSize: 2)
        executor.inputsRequireGradient = [true]
        try executor.forward([Tensor(shape: [2, 3, 12, 12], scalars: golden.floats("input"))], training: false)
        #expect(maxRelativeError(executor.output().scalars, golden.floats("logits"), floor: 1) < 1e-4)
        executor.zeroGradients()
        let seed = executor.gradient(of: model.outputs[0]), r = golden.floats("weights")
        for i in seed.indices { seed[i] = r[i] }
        executor.backward(parameterGradients: false)
        let expected = golden.floats("input_grad")
        let scale = Double(expected.map { abs($0) }.max() ?? 0)
        expectClose(
            Array(executor.gradient(of: ValueID(index: 0))), expected, rtol: 0, atol: 1e-4 * scale, "input gradient")
    }
}

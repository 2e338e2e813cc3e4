import DSGCore
import DSGTestSupport
import Foundation
import Testing

/// ResNet-20 on 1x28x28, with weights and inputs from an integer hash shared with `generate_fixtures.py`,
/// against PyTorch's logits, input gradient and selected parameter gradients (`Fixtures/resnet20.json`).
@Suite("ResNet-20 matches PyTorch")
struct ResNet20ParityTests {
    static let fixture = try! Fixture(named: "resnet20.json", in: .module)

    /// Twin of `hash_uniform` in generate_fixtures.py: a value in [-1, 1).
    static func hashUniform(_ index: Int, _ i: Int) -> Double {
        var h = (UInt64(i) &* 2_654_435_761 &+ UInt64(index) &* 40503 &+ 12345) & 0xFFFF_FFFF
        h ^= h >> 16
        h = (h &* 73_244_475) & 0xFFFF_FFFF
        h ^= h >> 16
        return 2 * Double(h) / 4_294_967_296 - 1
    }

    /// Twin of `formula_value` in generate_fixtures.py.
    static func formulaValue(kind: String, index: Int, i: Int, fanIn: Int) -> Float {
        let s = hashUniform(index, i)
        switch kind {
        case "weight_conv", "weight_linear": return Float(s * (6.0 / Double(fanIn)).squareRoot())
        case "bn_weight": return Float(1 + 0.2 * s)
        case "bias", "bn_bias", "running_mean": return Float(0.1 * s)
        default: return Float(0.6 + 0.4 * s * s)  // running_var
        }
    }

    /// Twin of `kind_of` in generate_fixtures.py.
    static func kind(_ name: String, rank: Int) -> String {
        let leaf = name.split(separator: ".").last.map(String.init) ?? name
        if leaf == "running_mean" || leaf == "running_var" { return leaf }
        let isBN = ("." + name).contains(".bn")
        if leaf == "weight" { return isBN ? "bn_weight" : (rank == 4 ? "weight_conv" : "weight_linear") }
        return isBN ? "bn_bias" : "bias"
    }

    static func model() throws -> Model {
        let model = try ResNet.resnet20()
        let order = fixture.array("tensor_order").compactMap { $0 as? String }
        #expect(order.count == model.tensors.count, "PyTorch and Swift disagree on the number of tensors")
        for (index, name) in order.enumerated() {
            let shape = try model.tensor(named: name).shape
            let fanIn = shape.rank > 1 ? shape.elementCount / shape[0] : 1
            let values = (0..<shape.elementCount).map {
                formulaValue(kind: kind(name, rank: shape.rank), index: index, i: $0, fanIn: fanIn)
            }
            try model.setTensor(named: name, to: Tensor(shape: shape, scalars: values))
        }
        return model
    }

    @Test("logits, input gradient and parameter gradients", arguments: ["eval", "train"])
    func parity(mode: String) throws {
        let model = try Self.model()
        let n = Int(Self.fixture.double("batch"))
        let x = Tensor(shape: [n, 1, 28, 28], scalars: (0..<(n * 784)).map { Float(1.5 * Self.hashUniform(999, $0)) })
        let executor = try GraphExecutor(model: model, batchSize: n)
        executor.inputsRequireGradient = [true]
        try executor.forward([x], training: mode == "train")
        let expected = Self.fixture[mode]
        let logits = executor.output().scalars
        #expect(maxRelativeError(logits, expected.floats("logits")) < 1e-4, "logits")

        executor.zeroGradients()
        let seed = executor.gradient(of: model.outputs[0])
        for i in seed.indices { seed[i] = Float(Self.hashUniform(1000, i)) }
        executor.backward()
        let inputGrad = Array(executor.gradient(of: ValueID(index: 0)))
        let scale = expected.floats("input_grad").map { abs($0) }.max() ?? 1
        // Relative to the gradient's scale: single elements near zero carry only rounding noise.
        #expect(maxRelativeError(inputGrad, expected.floats("input_grad"), floor: Double(scale)) < 1e-4, "input gradient")
        for (name, key) in [
            ("conv1.weight", "conv1_weight_grad"), ("fc.weight", "fc_weight_grad"),
            ("stage3.block0.shortcut.bn.weight", "stage3_block0_shortcut_bn_weight_grad"),
        ] {
            let g = try executor.parameterGradient(named: name).scalars
            let s = Double(expected.floats(key).map { abs($0) }.max() ?? 1)
            #expect(maxRelativeError(g, expected.floats(key), floor: s) < 1e-4, "\(name) gradient")
        }
        if mode == "train" {
            expectClose(try model.tensor(named: "bn1.running_mean").scalars, expected.floats("bn1_running_mean_after"), rtol: 1e-4, atol: 1e-6)
            expectClose(try model.tensor(named: "stage3.block2.bn2.running_var").scalars, expected.floats("stage3_block2_bn2_running_var_after"), rtol: 1e-4, atol: 1e-6)
        }
    }

    @Test("ResNet-20 has 21 BatchNorm layers and 10 logits")
    func structure() throws {
        let model = try ResNet.resnet20()
        #expect(model.nodes.filter { $0.op is BatchNormOp }.count == 21)
        #expect(model.shape(of: model.outputs[0]) == [10])
        let cifar = try ResNet.resnet20(input: [3, 32, 32])
        #expect(cifar.shape(of: cifar.outputs[0]) == [10])
        // 0.27 M parameters, as in He et al. (2016) with 1x1 projection shortcuts.
        #expect(model.parameterCount == 272_186)
        #expect(cifar.parameterCount == 272_474)
    }
}

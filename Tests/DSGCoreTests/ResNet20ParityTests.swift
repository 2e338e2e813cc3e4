import DSGCore
import DSGTestSupport
import Foundation
import Testing

/// ResNet-20 on 1x28x28, with weights and inputs from an integer hash shared with `generate_fixtures.py`,
/// against PyTorch's logits, input gradient and selected parameter gradients (`Fixtures/resnet20.json`).
@Suite("ResNet-20 matches PyTorch")
struct ResNet20ParityTests {
    static let fixture = try! Fixture(named: "resnet20.json", in: .module)

    static func model() throws -> Model {
        let model = try ResNet.resnet20()
        let order = fixture.array("tensor_order").compactMap { $0 as? String }
        #expect(order.count == model.tensors.count, "PyTorch and Swift disagree on the number of tensors")
        try HashedWeights.fill(model, order: order)
        return model
    }

    @Test("logits, input gradient and parameter gradients", arguments: ["eval", "train"])
    func parity(mode: String) throws {
        let model = try Self.model()
        let n = Int(Self.fixture.double("batch"))
        let x = Tensor(
            shape: [n, 1, 28, 28], scalars: (0..<(n * 784)).map { Float(1.5 * HashedWeights.hashUniform(999, $0)) })
        let executor = try GraphExecutor(model: model, batchSize: n)
        executor.inputsRequireGradient = [true]
        try executor.forward([x], training: mode == "train")
        let expected = Self.fixture[mode]
        let logits = executor.output().scalars
        #expect(maxRelativeError(logits, expected.floats("logits")) < 1e-4, "logits")

        executor.zeroGradients()
        let seed = executor.gradient(of: model.outputs[0])
        for i in seed.indices { seed[i] = Float(HashedWeights.hashUniform(1000, i)) }
        executor.backward()
        let inputGrad = Array(executor.gradient(of: ValueID(index: 0)))
        let scale = expected.floats("input_grad").map { abs($0) }.max() ?? 1
        // Relative to the gradient's scale: single elements near zero carry only rounding noise.
        #expect(
            maxRelativeError(inputGrad, expected.floats("input_grad"), floor: Double(scale)) < 1e-4, "input gradient")
        for (name, key) in [
            ("conv1.weight", "conv1_weight_grad"), ("fc.weight", "fc_weight_grad"),
            ("stage3.block0.shortcut.bn.weight", "stage3_block0_shortcut_bn_weight_grad"),
        ] {
            let g = try executor.parameterGradient(named: name).scalars
            let s = Double(expected.floats(key).map { abs($0) }.max() ?? 1)
            #expect(maxRelativeError(g, expected.floats(key), floor: s) < 1e-4, "\(name) gradient")
        }
        if mode == "train" {
            expectClose(
                try model.tensor(named: "bn1.running_mean").scalars, expected.floats("bn1_running_mean_after"),
                rtol: 1e-4, atol: 1e-6)
            expectClose(
                try model.tensor(named: "stage3.block2.bn2.running_var").scalars,
                expected.floats("stage3_block2_bn2_running_var_after"), rtol: 1e-4, atol: 1e-6)
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

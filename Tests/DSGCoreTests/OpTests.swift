import DSGCore
import DSGTestSupport
import Foundation
import Testing

@Suite("Operators against PyTorch goldens and finite differences")
struct OpTests {
    @Test("forward and backward match PyTorch", arguments: OpFixtures.names)
    func matchesPyTorch(_ name: String) throws {
        let c = OpFixtures.cases[name]
        let (model, inputs, training) = try OpFixtures.model(name)
        let executor = try GraphExecutor(model: model, batchSize: inputs[0].shape[0])
        let gradInputs = c.array("input_grads").map { !($0 is NSNull) }
        executor.inputsRequireGradient = gradInputs
        try executor.forward(inputs, training: training)
        expectClose(executor.output().scalars, c.tensor("output").scalars, rtol: 1e-4, atol: 1e-5, "\(name) output")

        executor.zeroGradients()
        let seed = executor.gradient(of: model.outputs[0])
        let upstream = c.tensor("upstream")
        for i in seed.indices { seed[i] = upstream[i] }
        executor.backward()
        for (k, expected) in c.array("input_grads").enumerated() where gradInputs[k] {
            let grad = Array(executor.gradient(of: ValueID(index: k)))
            expectClose(grad, Fixture.tensor(expected).scalars, rtol: 1e-4, atol: 1e-5, "\(name) input \(k) gradient")
        }
        for key in c["param_grads"].keys {
            let grad = try executor.parameterGradient(named: "op." + key).scalars
            expectClose(grad, c["param_grads"].tensor(key).scalars, rtol: 1e-4, atol: 1e-5, "\(name) \(key) gradient")
        }
        if c.has("running_mean_after") {
            expectClose(
                try model.tensor(named: "op.running_mean").scalars, c.tensor("running_mean_after").scalars, rtol: 1e-5,
                "running mean")
            expectClose(
                try model.tensor(named: "op.running_var").scalars, c.tensor("running_var_after").scalars, rtol: 1e-5,
                "running var")
        }
    }

    @Test("gradients match central finite differences", arguments: OpFixtures.names)
    func finiteDifferences(_ name: String) throws {
        var (model, inputs, training) = try OpFixtures.model(name)
        if name.hasPrefix("maxpool") {
            // Distinct, well-separated values: a finite step must not change which element wins a window.
            var rng = SeededRandom(seed: 3)
            let n = inputs[0].elementCount
            let order = (0..<n).shuffled(using: &rng)
            inputs[0] = Tensor(shape: inputs[0].shape, scalars: order.map { Float($0) * 0.1 - Float(n) * 0.05 })
        }
        // Labels (embedding, conditional BatchNorm) have no gradient: the fixture marks them with null.
        let differentiable = OpFixtures.cases[name].array("input_grads").map { !($0 is NSNull) }
        let check = GradientCheck(training: training)
        let failures = try check.failures(model: model, inputs: inputs, inputsRequireGradient: differentiable)
        #expect(failures.isEmpty, "\(name): \(failures.prefix(5))")
    }
}

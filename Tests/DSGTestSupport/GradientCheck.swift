import DSGCore

/// Central finite differences against a graph's backward pass.
///
/// The loss is `L = Σ output · r` for a fixed random `r`, summed in Double. For every graph input marked in
/// `inputsRequireGradient` and every parameter, up to `probes` coordinates are perturbed by `±step` in Float32
/// and `(L(+) - L(-)) / 2 step` is compared with the analytic gradient within `atol + rtol * |numeric|`.
/// Tolerances follow from Float32 forward passes: the loss carries a rounding error near `1e-6 * Σ|out·r|`, which
/// the difference quotient divides by `2 step`.
public struct GradientCheck {
    /// The perturbation of each probed coordinate, in Float32.
    public var step: Float = 1e-2
    /// Relative tolerance, against the numeric gradient.
    public var rtol = 1e-3
    /// Absolute tolerance.
    public var atol = 2e-4
    /// How many coordinates of each input and parameter are probed (all of them if there are fewer).
    public var probes = 24
    /// Whether the passes run in training mode (BatchNorm on batch statistics).
    public var training = false

    /// A check with the default step and tolerances, in evaluation mode unless `training`.
    public init(training: Bool = false) { self.training = training }

    /// Returns a description of every coordinate that disagrees (empty when the check passes).
    public func failures(model: Model, inputs: [Tensor], inputsRequireGradient: [Bool], seed: UInt64 = 7) throws
        -> [String]
    {
        let batch = inputs[0].shape[0]
        let executor = try GraphExecutor(model: model, batchSize: batch)
        executor.inputsRequireGradient = inputsRequireGradient
        var rng = SeededRandom(seed: seed)
        let outputID = model.outputs[0]
        let r = rng.normalTensor(model.shape(of: outputID).batched(batch))

        func loss(_ xs: [Tensor]) throws -> Double {
            try executor.forward(xs, training: training)
            return executor.withValue(outputID) { out in
                var s = 0.0
                for i in out.indices { s += Double(out[i]) * Double(r[i]) }
                return s
            }
        }

        _ = try loss(inputs)
        executor.zeroGradients()
        let seedGrad = executor.gradient(of: outputID)
        for i in seedGrad.indices { seedGrad[i] = r[i] }
        executor.backward(parameterGradients: true)

        var failures: [String] = []
        func compare(_ what: String, _ analytic: Float, _ numeric: Double) {
            if !(abs(Double(analytic) - numeric) <= atol + rtol * abs(numeric)) {
                failures.append("\(what): analytic \(analytic), numeric \(numeric)")
            }
        }
        // Input gradients.
        for (k, input) in inputs.enumerated() where inputsRequireGradient[k] {
            let analytic = executor.gradient(of: ValueID(index: k)).map { $0 }
            for i in probeIndices(input.elementCount, &rng) {
                var plus = inputs, minus = inputs
                plus[k][i] += step
                minus[k][i] -= step
                compare("input \(k)[\(i)]", analytic[i], try (loss(plus) - loss(minus)) / Double(2 * step))
            }
        }
        // Parameter gradients (analytic gradients were read before the perturbation passes).
        for t in model.tensors where t.role == .parameter {
            let analytic = try executor.parameterGradient(named: t.name).scalars
            let original = t.tensor
            for i in probeIndices(original.elementCount, &rng) {
                var p = original
                p[i] = original[i] + step
                try model.setTensor(named: t.name, to: p)
                let lp = try loss(inputs)
                p[i] = original[i] - step
                try model.setTensor(named: t.name, to: p)
                let lm = try loss(inputs)
                try model.setTensor(named: t.name, to: original)
                compare("\(t.name)[\(i)]", analytic[i], (lp - lm) / Double(2 * step))
            }
        }
        return failures
    }

    private func probeIndices(_ count: Int, _ rng: inout SeededRandom) -> [Int] {
        count <= probes ? Array(0..<count) : (0..<probes).map { _ in rng.integer(in: 0..<count) }
    }
}

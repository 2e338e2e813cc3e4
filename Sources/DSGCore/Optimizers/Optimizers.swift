/// Stochastic gradient descent with PyTorch's semantics: weight decay is added to the gradient, momentum keeps
/// `v = μ v + g` (the first step sets `v = g`), Nesterov steps along `g + μ v`, plain momentum along `v`.
public final class SGD {
    /// The step size; variable so a schedule can set it before each step.
    public var learningRate: Float
    /// The momentum factor `μ`; 0 (the default) steps along the gradient alone.
    public let momentum: Float
    /// Whether to take Nesterov steps (`g + μ v`) instead of plain momentum steps (`v`); needs `momentum > 0`.
    public let nesterov: Bool
    /// The L2 coefficient: `weightDecay * p` is added to the gradient before momentum (PyTorch's coupled decay).
    public let weightDecay: Float
    private var velocity: [Int: UnsafeMutablePointer<Float>] = [:]

    /// An optimizer with no state yet: each tensor's momentum buffer is allocated at its first step. Nesterov without
    /// a positive momentum is a programmer error (precondition).
    public init(learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        precondition(!nesterov || momentum > 0, "SGD: Nesterov momentum needs a positive momentum.")
        (self.learningRate, self.momentum, self.nesterov, self.weightDecay) = (
            learningRate, momentum, nesterov, weightDecay
        )
    }

    deinit { for p in velocity.values { p.deallocate() } }

    /// Updates `count` values in place from their gradient. `slot` names the state (one per tensor).
    public func step(_ p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>, count: Int, slot: Int) {
        let first = velocity[slot] == nil
        let v =
            velocity[slot]
            ?? {
                let v = UnsafeMutablePointer<Float>.allocate(capacity: count)
                v.initialize(repeating: 0, count: count)
                velocity[slot] = v
                return v
            }()
        let (lr, mu, wd) = (learningRate, momentum, weightDecay)
        for i in 0..<count {
            var d = g[i] + wd * p[i]
            if mu != 0 {
                v[i] = first ? d : mu * v[i] + d
                d = nesterov ? d + mu * v[i] : v[i]
            }
            p[i] -= lr * d
        }
    }

    /// One step on every parameter of the executor's model, from the executor's accumulated gradients.
    public func step(_ executor: GraphExecutor) {
        forEachParameter(executor) { p, g, n, slot in step(p, gradient: g, count: n, slot: slot) }
    }

    /// The momentum buffers of `model`'s parameters, named `<prefix><parameter name>`, for checkpoints.
    public func state(of model: Model, prefix: String = "optimizer.velocity.") -> [(name: String, tensor: Tensor)] {
        model.tensors.indices.compactMap { i in
            guard let v = velocity[i] else { return nil }
            let shape = model.tensors[i].tensor.shape
            return (
                prefix + model.tensors[i].name,
                Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: v, count: shape.elementCount)))
            )
        }
    }

    /// Restores momentum buffers saved by ``state(of:prefix:)``.
    public func restoreState(
        _ contents: Safetensors.Contents, of model: Model, prefix: String = "optimizer.velocity.", file: String
    ) throws(SafetensorsError) {
        for i in model.tensors.indices {
            let name = prefix + model.tensors[i].name
            guard let saved = contents.tensor(named: name) else { continue }
            let shape = model.tensors[i].tensor.shape
            guard saved.shape == shape else {
                throw .shape(file: file, tensor: name, expected: shape, found: saved.shape)
            }
            let v = velocity[i] ?? UnsafeMutablePointer<Float>.allocate(capacity: shape.elementCount)
            saved.withUnsafeBufferPointer { v.update(from: $0.baseAddress!, count: shape.elementCount) }
            velocity[i] = v
        }
    }
}

/// Adam (Kingma & Ba 2015) with PyTorch's semantics, including L2 weight decay added to the gradient.
public final class Adam {
    /// The step size `α`; variable so a schedule can set it before each step.
    public var learningRate: Float
    /// Decay rates of the first- and second-moment estimates, the `ε` added to the denominator, and the L2
    /// coefficient added to the gradient (PyTorch's `Adam`, not `AdamW`).
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    private var state: [Int: (m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, step: Int)] = [:]

    /// An optimizer with no state yet; the defaults are PyTorch's. Each tensor's moment estimates are allocated at its
    /// first step, and the bias corrections count that tensor's own steps.
    public init(
        learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0
    ) {
        (self.learningRate, self.beta1, self.beta2, self.epsilon, self.weightDecay) = (
            learningRate, beta1, beta2, epsilon, weightDecay
        )
    }

    deinit {
        for s in state.values {
            s.m.deallocate()
            s.v.deallocate()
        }
    }

    /// Updates `count` values in place from their gradient. `slot` names the state (one per tensor).
    public func step(_ p: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>, count: Int, slot: Int) {
        var s =
            state[slot]
            ?? {
                let m = UnsafeMutablePointer<Float>.allocate(capacity: count),
                    v = UnsafeMutablePointer<Float>.allocate(capacity: count)
                m.initialize(repeating: 0, count: count)
                v.initialize(repeating: 0, count: count)
                return (m, v, 0)
            }()
        s.step += 1
        state[slot] = s
        let c1 = 1 - Float(Double(beta1).power(s.step)), c2 = 1 - Float(Double(beta2).power(s.step))
        let stepSize = learningRate / c1, root2 = c2.squareRoot()
        for i in 0..<count {
            let d = g[i] + weightDecay * p[i]
            s.m[i] = beta1 * s.m[i] + (1 - beta1) * d
            s.v[i] = beta2 * s.v[i] + (1 - beta2) * d * d
            p[i] -= stepSize * s.m[i] / (s.v[i].squareRoot() / root2 + epsilon)
        }
    }

    /// One step on every parameter of the executor's model, from the executor's accumulated gradients.
    public func step(_ executor: GraphExecutor) {
        forEachParameter(executor) { p, g, n, slot in step(p, gradient: g, count: n, slot: slot) }
    }

    /// The moment estimates of `model`'s parameters, named `<prefix>m.<name>` and `<prefix>v.<name>`, and the
    /// step count of each as `<prefix>step.<name>` (one value), for checkpoints.
    public func state(of model: Model, prefix: String) -> [(name: String, tensor: Tensor)] {
        model.tensors.indices.flatMap { i -> [(name: String, tensor: Tensor)] in
            guard let s = state[i] else { return [] }
            let (name, shape) = (model.tensors[i].name, model.tensors[i].tensor.shape)
            let n = shape.elementCount
            return [
                (prefix + "m." + name, Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: s.m, count: n)))),
                (prefix + "v." + name, Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: s.v, count: n)))),
                (prefix + "step." + name, Tensor(shape: [1], scalars: [Float(s.step)])),
            ]
        }
    }

    /// Restores moment estimates saved by ``state(of:prefix:)``.
    public func restoreState(_ contents: Safetensors.Contents, of model: Model, prefix: String, file: String)
        throws(SafetensorsError)
    {
        for i in model.tensors.indices {
            let name = model.tensors[i].name, shape = model.tensors[i].tensor.shape
            guard let m = contents.tensor(named: prefix + "m." + name),
                let v = contents.tensor(named: prefix + "v." + name),
                let step = contents.tensor(named: prefix + "step." + name)
            else { continue }
            for (key, saved) in [("m.", m), ("v.", v)] where saved.shape != shape {
                throw .shape(file: file, tensor: prefix + key + name, expected: shape, found: saved.shape)
            }
            guard step.shape == [1], step[0] >= 0, step[0] < 1e9, step[0] == step[0].rounded() else {
                throw .badEntry(
                    file: file, tensor: prefix + "step." + name, reason: "the step count must be [1] and whole")
            }
            let n = shape.elementCount
            let s =
                state[i] ?? (
                    UnsafeMutablePointer<Float>.allocate(capacity: n),
                    UnsafeMutablePointer<Float>.allocate(capacity: n), 0
                )
            m.withUnsafeBufferPointer { s.m.update(from: $0.baseAddress!, count: n) }
            v.withUnsafeBufferPointer { s.v.update(from: $0.baseAddress!, count: n) }
            state[i] = (s.m, s.v, Int(step.scalars[0]))
        }
    }
}

extension Double {
    fileprivate func power(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<n { r *= self }
        return r
    }
}

/// Calls `body(parameter, gradient, count, tensorIndex)` for every trained tensor of the executor's model.
private func forEachParameter(
    _ executor: GraphExecutor, _ body: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void
) {
    let model = executor.model
    for i in model.tensors.indices {
        guard let g = executor.tensorGradient(i) else { continue }
        body(model.mutablePointer(tensor: i), g, model.tensors[i].tensor.elementCount, i)
    }
}

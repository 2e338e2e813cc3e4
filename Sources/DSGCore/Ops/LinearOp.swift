import DSGKernels

/// Fully connected layer (PyTorch `Linear`): `y[N, O] = x[N, I] · weight[O, I]ᵀ + bias[O]`.
public struct LinearOp: GraphOperator {
    /// Input features `I`; the input must be `[I]` per sample (flatten images first).
    public let inFeatures: Int
    /// Output features `O` (the classes, for a classifier head).
    public let outFeatures: Int
    /// Whether the node owns a `bias [O]`.
    public let hasBias: Bool
    /// `"Linear"`.
    public var kind: String { "Linear" }

    /// A fully connected layer from `inFeatures` to `outFeatures`, with a bias by default (as PyTorch).
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        (self.inFeatures, self.outFeatures, self.hasBias) = (inFeatures, outFeatures, bias)
    }

    /// `[O]`; throws unless there is one input of exactly `[I]`.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0] == [inFeatures] else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input [\(inFeatures)]")
        }
        return [outFeatures]
    }

    /// `weight [O, I]` and, with a bias, `bias [O]`, both `U(-1/√I, 1/√I)` (PyTorch's default).
    public var tensorSpecs: [TensorSpec] {
        let bound = 1 / Float(inFeatures).squareRoot()  // PyTorch's default initialisation
        let weight = TensorSpec("weight", [outFeatures, inFeatures], .parameter, .uniform(bound: bound))
        return hasBias ? [weight, TensorSpec("bias", [outFeatures], .parameter, .uniform(bound: bound))] : [weight]
    }

    /// `y = x · weightᵀ + bias` as one SGEMM over the batch.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let n = c.batch
        if hasBias {
            for i in 0..<n { (c.output + i * outFeatures).update(from: c.tensors[1], count: outFeatures) }
        }
        BLAS.sgemm(
            .none, .transposed, m: n, n: outFeatures, k: inFeatures,
            a: c.inputs[0], lda: inFeatures, b: c.tensors[0], ldb: inFeatures,
            beta: hasBias ? 1 : 0, c: c.output, ldc: outFeatures)
    }

    /// Accumulates `dx += dy · W` and, with parameter gradients, `dW += dyᵀ · x` and `db += Σₙ dy`.
    public func backward(_ c: NodeContext) {
        let n = c.batch
        if let dx = c.inputGrads[0] {
            // dx[N, I] += dy[N, O] · W[O, I]
            BLAS.sgemm(
                .none, .none, m: n, n: inFeatures, k: outFeatures,
                a: c.outputGrad, lda: outFeatures, b: c.tensors[0], ldb: inFeatures,
                beta: 1, c: dx, ldc: inFeatures)
        }
        if let dw = c.tensorGrads[0] {
            // dW[O, I] += dy[N, O]ᵀ · x[N, I]
            BLAS.sgemm(
                .transposed, .none, m: outFeatures, n: inFeatures, k: n,
                a: c.outputGrad, lda: outFeatures, b: c.inputs[0], ldb: inFeatures,
                beta: 1, c: dw, ldc: inFeatures)
        }
        if hasBias, let db = c.tensorGrads[1] {
            for i in 0..<n { for o in 0..<outFeatures { db[o] += c.outputGrad[i * outFeatures + o] } }
        }
    }
}

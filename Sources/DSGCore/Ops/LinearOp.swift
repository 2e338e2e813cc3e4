import DSGKernels

/// Fully connected layer (PyTorch `Linear`): `y[N, O] = x[N, I] · weight[O, I]ᵀ + bias[O]`.
public struct LinearOp: GraphOperator {
    public let inFeatures: Int
    public let outFeatures: Int
    public let hasBias: Bool
    public var kind: String { "Linear" }

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        (self.inFeatures, self.outFeatures, self.hasBias) = (inFeatures, outFeatures, bias)
    }

    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0] == [inFeatures] else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input [\(inFeatures)]")
        }
        return [outFeatures]
    }

    public var tensorSpecs: [TensorSpec] {
        let bound = 1 / Float(inFeatures).squareRoot()  // PyTorch's default initialisation
        let weight = TensorSpec("weight", [outFeatures, inFeatures], .parameter, .uniform(bound: bound))
        return hasBias ? [weight, TensorSpec("bias", [outFeatures], .parameter, .uniform(bound: bound))] : [weight]
    }

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

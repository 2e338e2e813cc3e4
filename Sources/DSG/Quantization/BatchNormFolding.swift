import DSGCore

/// Folds every BatchNorm that directly follows a convolution (and is that convolution's only reader) into the
/// convolution, for evaluation-mode models: with `σ = sqrt(running_var + ε)`,
///
/// ```
/// w' = w · γ / σ        b' = β + (b − μ) · γ / σ        (per output channel; b = 0 without a bias)
/// ```
///
/// The folded model computes the same function in evaluation mode with one node fewer per pair.
public enum BatchNormFolding {
    /// A new model with every such pair folded (`model` is left alone); every other tensor keeps its value.
    public static func fold(_ model: Model) throws -> Model {
        // Which convolutions feed a BatchNorm as their only reader.
        var readers: [Int: Int] = [:]
        for node in model.nodes { for input in node.inputs { readers[input.index, default: 0] += 1 } }
        for output in model.outputs { readers[output.index, default: 0] += 1 }
        var foldInto: [String: Node] = [:]  // convolution name -> its BatchNorm
        for node in model.nodes where node.op is BatchNormOp {
            if let producer = model.node(producing: node.inputs[0]), producer.op is Conv2dOp,
                readers[producer.output.index] == 1
            {
                foldInto[producer.name] = node
            }
        }

        let folded = Model()
        var random = SeededRandom(seed: 0)
        var map: [Int: ValueID] = [:]
        for (i, input) in model.inputs.enumerated() { map[i] = folded.addInput(name: input.name, shape: input.shape) }
        let skipped = Set(foldInto.values.map(\.name))
        for node in model.nodes where !skipped.contains(node.name) {
            let inputs = node.inputs.map { map[$0.index]! }
            guard let conv = node.op as? Conv2dOp, let bn = foldInto[node.name], let bnOp = bn.op as? BatchNormOp else {
                map[node.output.index] = try folded.add(node.op, name: node.name, inputs: inputs, using: &random)
                continue
            }
            let output = try folded.add(
                Conv2dOp(geometry: conv.geometry, bias: true), name: node.name, inputs: inputs, using: &random)
            map[node.output.index] = output
            map[bn.output.index] = output
            try setFoldedTensors(conv: node, convOp: conv, bn: bn, bnOp: bnOp, from: model, into: folded)
        }
        folded.outputs = model.outputs.map { map[$0.index]! }
        // Every other tensor keeps its value.
        for t in model.tensors {
            if let existing = try? folded.tensor(named: t.name), existing.shape == t.tensor.shape,
                !isFolded(t.name, foldInto)
            {
                try folded.setTensor(named: t.name, to: t.tensor)
            }
        }
        return folded
    }

    private static func isFolded(_ name: String, _ foldInto: [String: Node]) -> Bool {
        foldInto.keys.contains { name == $0 + ".weight" || name == $0 + ".bias" }
    }

    private static func setFoldedTensors(
        conv: Node, convOp: Conv2dOp, bn: Node, bnOp: BatchNormOp, from model: Model, into folded: Model
    ) throws {
        let channels = convOp.geometry.outChannels
        let weight = try model.tensor(named: conv.name + ".weight").scalars
        let bias =
            convOp.hasBias ? try model.tensor(named: conv.name + ".bias").scalars : Array(repeating: 0, count: channels)
        let mean = try model.tensor(named: bn.name + ".running_mean").scalars
        let variance = try model.tensor(named: bn.name + ".running_var").scalars
        let gamma =
            bnOp.affine ? try model.tensor(named: bn.name + ".weight").scalars : Array(repeating: 1, count: channels)
        let beta =
            bnOp.affine ? try model.tensor(named: bn.name + ".bias").scalars : Array(repeating: 0, count: channels)
        let perChannel = weight.count / channels
        var newWeight = weight, newBias = bias
        for o in 0..<channels {
            let scale = gamma[o] / (variance[o] + bnOp.epsilon).squareRoot()
            for k in 0..<perChannel { newWeight[o * perChannel + k] = weight[o * perChannel + k] * scale }
            newBias[o] = beta[o] + (bias[o] - mean[o]) * scale
        }
        try folded.setTensor(
            named: conv.name + ".weight",
            to: Tensor(shape: try model.tensor(named: conv.name + ".weight").shape, scalars: newWeight))
        try folded.setTensor(named: conv.name + ".bias", to: Tensor(shape: [channels], scalars: newBias))
    }
}

extension Model {
    /// A copy of the model with a new node after every node for which `insert` returns one: the new node reads
    /// that node's output, and every later reader of the output (and the model's outputs) reads the new node
    /// instead. Existing tensors keep their values; new nodes' tensors start from their initializers.
    ///
    /// This is how quantization puts fake-quantization nodes after activations without touching the layers.
    public func inserting(after insert: (Node) -> (op: any GraphOperator, name: String)?) throws(GraphError) -> Model {
        let copy = Model()
        var random = SeededRandom(seed: 0)
        var map: [Int: ValueID] = [:]
        for (i, input) in inputs.enumerated() { map[i] = copy.addInput(name: input.name, shape: input.shape) }
        for node in nodes {
            let output = try copy.add(
                node.op, name: node.name, inputs: node.inputs.map { map[$0.index]! }, using: &random)
            map[node.output.index] = output
            if let extra = insert(node) {
                map[node.output.index] = try copy.add(extra.op, name: extra.name, inputs: [output], using: &random)
            }
        }
        copy.outputs = outputs.map { map[$0.index]! }
        for t in tensors { try copy.setTensor(named: t.name, to: t.tensor) }
        return copy
    }
}

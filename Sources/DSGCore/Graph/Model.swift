/// A value in a model graph: a graph input or the output of one node.
public struct ValueID: Hashable, Sendable, CustomStringConvertible {
    /// The value's position: graph inputs first (`0..<inputs.count`), then one per node in node order.
    public let index: Int
    /// The value at `index`; only a model's own values are meaningful (``Model/add(_:name:inputs:using:)`` checks).
    public init(index: Int) { self.index = index }
    /// `#` and the index, e.g. `#3`.
    public var description: String { "#\(index)" }
}

/// One node of a model graph.
public struct Node: Sendable {
    /// Dotted name, e.g. `stage1.block0.conv1`; its tensors are `<name>.<suffix>`.
    public let name: String
    /// What the node computes: its shape rule, tensors, forward and backward.
    public let op: any GraphOperator
    /// The values the node reads, in the operator's order; all produced before it.
    public let inputs: [ValueID]
    /// The node's one output value.
    public let output: ValueID
    /// Indices into ``Model/tensors`` of the node's tensors, in the operator's `tensorSpecs` order.
    public let tensorIndices: [Int]
}

/// A named parameter or buffer of a model.
public struct NamedTensor: Sendable {
    /// The full name, `<node>.<suffix>` as in PyTorch's `state_dict` (`stage1.block0.bn1.running_mean`).
    public let name: String
    /// A trained parameter or a buffer.
    public let role: TensorRole
    /// The current value. A model's own copy changes through ``Model/setTensor(named:to:)``, loading,
    /// optimizer steps and (running statistics) training passes.
    public var tensor: Tensor
}

/// A neural network as a directed acyclic graph: inputs, then nodes in topological order (each node reads only
/// inputs and earlier nodes), plus the parameters and buffers the nodes own.
///
/// A model is a reference type so that executors, optimizers and the user see the same weights. Nodes are
/// appended with ``add(_:name:inputs:using:)``, which checks shapes and initialises the node's tensors.
public final class Model: @unchecked Sendable {
    /// A graph input: the name errors use and the per-sample shape every batch must have.
    public struct Input: Sendable {
        /// The input's name, e.g. `image` or `label`.
        public let name: String
        /// Per-sample shape, e.g. `[1, 28, 28]`; `[]` for one label per sample.
        public let shape: Shape
    }

    /// The graph inputs, in the order executors take them; their values are `0..<inputs.count`.
    public private(set) var inputs: [Input] = []
    /// The nodes in execution order (topological: each reads only inputs and earlier nodes).
    public private(set) var nodes: [Node] = []
    /// The values the model returns; by default the last node's output.
    public var outputs: [ValueID] = []
    /// Every parameter and buffer, in the order the nodes created them (each node's in its `tensorSpecs` order):
    /// the order of ``stateDict`` and of saved files.
    public internal(set) var tensors: [NamedTensor] = []
    /// Per-sample shape of every value, indexed by `ValueID.index`.
    public private(set) var valueShapes: [Shape] = []
    private var tensorIndex: [String: Int] = [:]
    private var nodeNames: Set<String> = []

    /// An empty model: declare the inputs with ``addInput(name:shape:)``, then add nodes.
    public init() {}

    /// Declares a graph input. All inputs must be declared before the first node.
    @discardableResult
    public func addInput(name: String, shape: Shape) -> ValueID {
        precondition(nodes.isEmpty, "Model.addInput: declare every input before adding nodes.")
        inputs.append(Input(name: name, shape: shape))
        valueShapes.append(shape)
        return ValueID(index: valueShapes.count - 1)
    }

    /// Appends a node computing `op(inputs)`, creating its tensors with the operator's initializers.
    @discardableResult
    public func add(
        _ op: any GraphOperator, name: String, inputs: [ValueID], using random: inout SeededRandom
    ) throws(GraphError) -> ValueID {
        guard !nodeNames.contains(name) else { throw .duplicateName(name) }
        for v in inputs where v.index < 0 || v.index >= valueShapes.count {
            throw .unknownValue(node: name, value: v.index)
        }
        let outputShape = try op.outputShape(for: inputs.map { valueShapes[$0.index] }, node: name)
        var indices: [Int] = []
        for spec in op.tensorSpecs {
            let fullName = name + "." + spec.suffix
            guard tensorIndex[fullName] == nil else { throw .duplicateName(fullName) }
            let tensor = Self.initialTensor(spec, using: &random)
            tensorIndex[fullName] = tensors.count
            indices.append(tensors.count)
            tensors.append(NamedTensor(name: fullName, role: spec.role, tensor: tensor))
        }
        nodeNames.insert(name)
        valueShapes.append(outputShape)
        let output = ValueID(index: valueShapes.count - 1)
        nodes.append(Node(name: name, op: op, inputs: inputs, output: output, tensorIndices: indices))
        outputs = [output]
        return output
    }

    /// The per-sample shape of a value.
    public func shape(of value: ValueID) -> Shape { valueShapes[value.index] }

    /// The node that produces `value`, or nil for a graph input.
    public func node(producing value: ValueID) -> Node? {
        let i = value.index - inputs.count
        return i >= 0 ? nodes[i] : nil
    }

    /// The parameter or buffer called `name`.
    public func tensor(named name: String) throws(GraphError) -> Tensor {
        guard let i = tensorIndex[name] else { throw .unknownTensor(name) }
        return tensors[i].tensor
    }

    /// Replaces the parameter or buffer called `name`; the shape must match.
    public func setTensor(named name: String, to tensor: Tensor) throws(GraphError) {
        guard let i = tensorIndex[name] else { throw .unknownTensor(name) }
        guard tensors[i].tensor.shape == tensor.shape else {
            throw .tensorShape(name: name, expected: tensors[i].tensor.shape, got: tensor.shape)
        }
        tensors[i].tensor = tensor
    }

    /// The position of the parameter or buffer called `name` in ``tensors``.
    public func tensorPosition(named name: String) throws(GraphError) -> Int {
        guard let i = tensorIndex[name] else { throw .unknownTensor(name) }
        return i
    }

    /// Pointer to tensor `i`'s storage after making it unique, for in-place updates by optimizers and executors.
    package func mutablePointer(tensor i: Int) -> UnsafeMutablePointer<Float> {
        tensors[i].tensor.makeUnique()
        return tensors[i].tensor.pointer
    }

    /// The number of trained scalars.
    public var parameterCount: Int {
        tensors.filter { $0.role == .parameter }.reduce(0) { $0 + $1.tensor.elementCount }
    }

    /// An independent copy: same graph, its own parameter and buffer values (shared storage until written).
    public func copy() -> Model {
        let m = Model()
        m.inputs = inputs
        m.nodes = nodes
        m.outputs = outputs
        m.tensors = tensors
        m.valueShapes = valueShapes
        m.tensorIndex = tensorIndex
        m.nodeNames = nodeNames
        return m
    }

    private static func initialTensor(_ spec: TensorSpec, using g: inout SeededRandom) -> Tensor {
        switch spec.initializer {
        case .constant(let v): return Tensor(shape: spec.shape, repeating: v)
        case .uniform(let bound): return g.uniformTensor(spec.shape, -bound, bound)
        case .normal(let std): return g.normalTensor(spec.shape, standardDeviation: std)
        }
    }
}

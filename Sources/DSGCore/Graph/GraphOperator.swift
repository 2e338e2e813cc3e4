import DSGKernels

/// One operation of a model graph: its shape rule, the tensors it owns, and its forward and backward passes.
///
/// Shapes given to and returned by an operator are *per sample* (no batch dimension). Forward reads
/// `context.inputs` and writes `context.output`; backward reads the forward values and `context.outputGrad`
/// and **accumulates** (`+=`) into `context.inputGrads` and `context.tensorGrads` (either may be absent when
/// nobody needs them). Operators are immutable values; everything that changes lives in the executor.
public protocol GraphOperator: Sendable {
    /// A short operator name for errors and listings, e.g. `"Conv2d"`.
    var kind: String { get }

    /// The per-sample output shape for the given per-sample input shapes.
    func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape

    /// Parameters and buffers the node owns, in a fixed order; the executor passes them in that order.
    var tensorSpecs: [TensorSpec] { get }

    /// Floats the node keeps between forward and backward (per executor), for a batch of `batch`.
    func savedCount(batch: Int) -> Int
    /// Int32 slots the node keeps between forward and backward (e.g. max-pool winners).
    func savedIndexCount(batch: Int) -> Int
    /// Floats of scratch the node needs during one call; shared by all nodes.
    func workspaceCount(batch: Int) -> Int

    /// Computes `context.output` for the whole batch from `context.inputs` and the node's tensors, in training or
    /// evaluation mode (`context.training`); throws a ``GraphError`` for bad input values (a label out of range).
    func forward(_ context: NodeContext) throws(GraphError)
    /// Accumulates (`+=`) the gradients of the loss into the non-nil `context.inputGrads` and `context.tensorGrads`,
    /// from `context.outputGrad` and the values of the last forward.
    func backward(_ context: NodeContext)
}

extension GraphOperator {
    /// None: an operator owns no tensors unless it says so.
    public var tensorSpecs: [TensorSpec] { [] }
    /// None: nothing is kept between forward and backward.
    public func savedCount(batch: Int) -> Int { 0 }
    /// None.
    public func savedIndexCount(batch: Int) -> Int { 0 }
    /// None: no scratch.
    public func workspaceCount(batch: Int) -> Int { 0 }
}

/// Trained parameters go to optimizers; buffers (running statistics) are saved and loaded but never trained.
public enum TensorRole: Sendable, Equatable {
    /// Trained: has a gradient buffer and is updated by optimizers (weights, biases, BatchNorm's scale and shift).
    case parameter
    /// Not trained: no gradient; changed only by the operator itself (BatchNorm's running statistics) or by loading.
    case buffer
}

/// How a new tensor is filled when a node is added to a model.
public enum Initializer: Sendable, Equatable {
    /// Every element set to the value (BatchNorm's weight 1 and bias 0).
    case constant(Float)
    /// Independent draws from `U(-bound, bound)` (PyTorch's default for convolutions and linear layers).
    case uniform(bound: Float)
    /// Independent draws from `N(0, standardDeviation²)` (embeddings).
    case normal(standardDeviation: Float)
}

/// A tensor a node owns, named `<node>.<suffix>` in the model (PyTorch's names: `weight`, `running_mean`, ...).
public struct TensorSpec: Sendable {
    /// The name after the node's, e.g. `weight` or `running_var`.
    public let suffix: String
    /// The tensor's full shape (no batch dimension: parameters are shared by all samples).
    public let shape: Shape
    /// Whether optimizers train it (``TensorRole/parameter``) or it is a buffer.
    public let role: TensorRole
    /// How ``Model/add(_:name:inputs:using:)`` fills it, from the seeded random numbers `add` is given.
    public let initializer: Initializer

    /// A spec for the tensor `<node>.<suffix>` of `shape`, `role` and `initializer`.
    public init(_ suffix: String, _ shape: Shape, _ role: TensorRole, _ initializer: Initializer) {
        (self.suffix, self.shape, self.role, self.initializer) = (suffix, shape, role, initializer)
    }
}

/// The buffers one node works on during a pass. Built once per executor; only the tensor pointers are
/// refreshed before each pass (a tensor's storage may have been replaced by copy-on-write).
public final class NodeContext {
    /// The node's name, for errors.
    public let name: String
    /// The executor's batch size `N`: every buffer holds `N` samples.
    public let batch: Int
    /// Whether the last forward ran in training mode (batch statistics) or evaluation mode.
    public internal(set) var training = false
    /// In a data-parallel run, the batch this executor holds a share of: training-mode BatchNorm then uses the
    /// statistics of the whole batch (synchronised BatchNorm). Nil when the executor holds the whole batch.
    public internal(set) var sharing: BatchNorm.Sharing?
    /// Per-sample input shapes and output shape.
    public let inputShapes: [Shape]
    /// The per-sample output shape.
    public let outputShape: Shape
    /// `[batch, inputShapes[i]...]` buffers.
    public let inputs: [UnsafeMutablePointer<Float>]
    /// The `[batch, outputShape...]` buffer the forward pass writes.
    public let output: UnsafeMutablePointer<Float>
    /// The node's tensors, in ``GraphOperator/tensorSpecs`` order.
    public internal(set) var tensors: [UnsafeMutablePointer<Float>]
    /// Gradient of the loss with respect to `output`.
    public let outputGrad: UnsafeMutablePointer<Float>
    /// Gradients to accumulate into, nil where not needed in this backward pass.
    public internal(set) var inputGrads: [UnsafeMutablePointer<Float>?]
    /// Gradients of the node's tensors (nil for buffers, or all nil when parameter gradients are off).
    public internal(set) var tensorGrads: [UnsafeMutablePointer<Float>?]
    /// ``GraphOperator/savedCount(batch:)`` floats kept from forward to backward (BatchNorm's mean and inverse
    /// deviation).
    public let saved: UnsafeMutablePointer<Float>
    /// ``GraphOperator/savedIndexCount(batch:)`` Int32 slots kept from forward to backward (max pooling's winners).
    public let savedIndices: UnsafeMutablePointer<Int32>
    /// ``GraphOperator/workspaceCount(batch:)`` floats of scratch, shared by every node: contents do not survive
    /// from one call to the next.
    public let workspace: UnsafeMutablePointer<Float>

    init(
        name: String, batch: Int, inputShapes: [Shape], outputShape: Shape,
        inputs: [UnsafeMutablePointer<Float>], output: UnsafeMutablePointer<Float>,
        tensorCount: Int, outputGrad: UnsafeMutablePointer<Float>,
        saved: UnsafeMutablePointer<Float>, savedIndices: UnsafeMutablePointer<Int32>,
        workspace: UnsafeMutablePointer<Float>
    ) {
        self.name = name
        self.batch = batch
        self.inputShapes = inputShapes
        self.outputShape = outputShape
        self.inputs = inputs
        self.output = output
        self.tensors = Array(repeating: output, count: tensorCount)
        self.outputGrad = outputGrad
        self.inputGrads = Array(repeating: nil, count: inputs.count)
        self.tensorGrads = Array(repeating: nil, count: tensorCount)
        self.saved = saved
        self.savedIndices = savedIndices
        self.workspace = workspace
    }

    /// Runs `body` with the start of the workspace as `count` Doubles (an operator asks for `2 * count` floats
    /// of workspace to use it).
    public func withDoubleWorkspace<R>(_ count: Int, _ body: (UnsafeMutablePointer<Double>) -> R) -> R {
        UnsafeMutableRawPointer(workspace).withMemoryRebound(to: Double.self, capacity: count, body)
    }

    /// Elements of input `i` for the whole batch.
    public func inputCount(_ i: Int) -> Int { batch * inputShapes[i].elementCount }
    /// Elements of the output for the whole batch.
    public var outputCount: Int { batch * outputShape.elementCount }
}

import DSGKernels

/// Builds a ``Model`` layer by layer with PyTorch-style layer calls, dotted names and seeded initialisation.
///
/// ```swift
/// var b = ModelBuilder(seed: 0)
/// let x = b.input("image", [1, 28, 28])
/// var h = try b.conv2d(x, "conv1", outChannels: 16, kernel: 3, padding: 1)
/// h = try b.relu(try b.batchNorm(h, "bn1"), "relu1")
/// ```
/// `prefix` is prepended to every name (`"stage1.block0."`), so blocks can be written once.
public struct ModelBuilder {
    /// The model being built; a reference, so copies of the builder add to the same model.
    public let model = Model()
    /// The generator that initialises every new tensor, advanced in the order layers are added: one seed and one
    /// sequence of calls give the same weights on every machine.
    public var random: SeededRandom
    /// Prepended to every node name, e.g. `"stage1.block0."`; empty by default.
    public var prefix = ""

    /// A builder of an empty model whose tensors are initialised from `seed`.
    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    /// Declares a graph input with per-sample `shape` (`[C, H, W]` for images, `[]` for a label); the name takes no
    /// prefix. Every input must come before the first layer.
    public mutating func input(_ name: String, _ shape: Shape) -> ValueID {
        model.addInput(name: name, shape: shape)
    }

    /// Adds any operator under `prefix + name`.
    public mutating func add(_ op: any GraphOperator, _ name: String, _ inputs: [ValueID]) throws(GraphError) -> ValueID
    {
        try model.add(op, name: prefix + name, inputs: inputs, using: &random)
    }

    /// A square convolution (PyTorch `Conv2d`) to `outChannels`, without a bias by default (unlike PyTorch: the
    /// convolutions here feed BatchNorm). Throws a ``GraphError`` unless `x` is `[C, H, W]` and the geometry fits.
    public mutating func conv2d(
        _ x: ValueID, _ name: String, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        dilation: Int = 1, groups: Int = 1, bias: Bool = false
    ) throws(GraphError) -> ValueID {
        let s = model.shape(of: x)
        guard s.rank == 3 else {
            throw .shapeMismatch(node: prefix + name, op: "Conv2d", inputs: [s], expected: "one input [C, H, W]")
        }
        let geometry = try window(
            name, "Conv2d", s, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding,
            dilation: dilation, groups: groups)
        return try add(Conv2dOp(geometry: geometry, bias: bias), name, [x])
    }

    /// BatchNorm over the first axis of `x` (`[C]` or `[C, H, W]`), PyTorch's defaults.
    public mutating func batchNorm(
        _ x: ValueID, _ name: String, epsilon: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true
    ) throws(GraphError) -> ValueID {
        let channels = model.shape(of: x).dimensions.first ?? 0
        return try add(BatchNormOp(channels: channels, epsilon: epsilon, momentum: momentum, affine: affine), name, [x])
    }

    /// An element-wise `activation` of `x`.
    public mutating func activation(_ x: ValueID, _ activation: Activation, _ name: String) throws(GraphError)
        -> ValueID
    {
        try add(ActivationOp(activation), name, [x])
    }

    /// ReLU of `x`.
    public mutating func relu(_ x: ValueID, _ name: String) throws(GraphError) -> ValueID {
        try activation(x, .relu, name)
    }

    /// Square max pooling of `x` (`[C, H, W]`); padding may be at most half the window.
    public mutating func maxPool(
        _ x: ValueID, _ name: String, kernel: Int, stride: Int, padding: Int = 0
    ) throws(GraphError) -> ValueID {
        try add(MaxPool2dOp(window: poolWindow(x, name, "MaxPool2d", kernel, stride, padding)), name, [x])
    }

    /// Square average pooling of `x` (`[C, H, W]`), padding counted in the divisor; at most half the window.
    public mutating func avgPool(
        _ x: ValueID, _ name: String, kernel: Int, stride: Int, padding: Int = 0
    ) throws(GraphError) -> ValueID {
        try add(AvgPool2dOp(window: poolWindow(x, name, "AvgPool2d", kernel, stride, padding)), name, [x])
    }

    /// The mean of every channel plane: `[C, H, W] -> [C, 1, 1]`.
    public mutating func globalAvgPool(_ x: ValueID, _ name: String) throws(GraphError) -> ValueID {
        try add(GlobalAvgPoolOp(), name, [x])
    }

    /// `x` as one axis, `[C, H, W] -> [C * H * W]`, for a linear layer.
    public mutating func flatten(_ x: ValueID, _ name: String) throws(GraphError) -> ValueID {
        try add(ReshapeOp([model.shape(of: x).elementCount]), name, [x])
    }

    /// A fully connected layer from the flat `x` (`[I]`) to `outFeatures`, with a bias by default.
    public mutating func linear(_ x: ValueID, _ name: String, outFeatures: Int, bias: Bool = true) throws(GraphError)
        -> ValueID
    {
        try add(LinearOp(inFeatures: model.shape(of: x).elementCount, outFeatures: outFeatures, bias: bias), name, [x])
    }

    /// The element-wise sum of `xs` (two or more values of one shape): a residual connection.
    public mutating func addValues(_ xs: [ValueID], _ name: String) throws(GraphError) -> ValueID {
        try add(AddOp(), name, xs)
    }

    /// Sets the model's outputs and returns the finished model.
    public func finish(outputs: [ValueID]) -> Model {
        model.outputs = outputs
        return model
    }

    /// A pooling window over `x`: a depthwise "convolution" geometry (channels in = out = groups).
    private func poolWindow(
        _ x: ValueID, _ name: String, _ op: String, _ kernel: Int, _ stride: Int, _ padding: Int
    ) throws(GraphError) -> ConvGeometry {
        let s = model.shape(of: x)
        return try window(
            name, op, s, outChannels: s.dimensions.first ?? 0, kernel: kernel, stride: stride, padding: padding,
            depthwise: true)
    }

    private func window(
        _ name: String, _ op: String, _ s: Shape, outChannels: Int, kernel: Int, stride: Int, padding: Int,
        dilation: Int = 1, groups: Int = 1, depthwise: Bool = false
    ) throws(GraphError) -> ConvGeometry {
        guard s.rank == 3 else {
            throw .shapeMismatch(node: prefix + name, op: op, inputs: [s], expected: "one input [C, H, W]")
        }
        do {
            return try ConvGeometry(
                inChannels: s[0], outChannels: outChannels, kernel: (kernel, kernel), stride: (stride, stride),
                padding: (padding, padding), dilation: (dilation, dilation), groups: depthwise ? s[0] : groups,
                input: (s[1], s[2]))
        } catch {
            throw .invalidGeometry(node: prefix + name, op: op, input: s, reason: error.description)
        }
    }
}

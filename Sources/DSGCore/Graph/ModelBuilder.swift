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
    public let model = Model()
    public var random: SeededRandom
    public var prefix = ""

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    public mutating func input(_ name: String, _ shape: Shape) -> ValueID {
        model.addInput(name: name, shape: shape)
    }

    /// Adds any operator under `prefix + name`.
    public mutating func add(_ op: any GraphOperator, _ name: String, _ inputs: [ValueID]) throws(GraphError) -> ValueID
    {
        try model.add(op, name: prefix + name, inputs: inputs, using: &random)
    }

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

    public mutating func batchNorm(
        _ x: ValueID, _ name: String, epsilon: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true
    ) throws(GraphError) -> ValueID {
        let channels = model.shape(of: x).dimensions.first ?? 0
        return try add(BatchNormOp(channels: channels, epsilon: epsilon, momentum: momentum, affine: affine), name, [x])
    }

    public mutating func activation(_ x: ValueID, _ activation: Activation, _ name: String) throws(GraphError)
        -> ValueID
    {
        try add(ActivationOp(activation), name, [x])
    }

    public mutating func relu(_ x: ValueID, _ name: String) throws(GraphError) -> ValueID {
        try activation(x, .relu, name)
    }

    public mutating func maxPool(
        _ x: ValueID, _ name: String, kernel: Int, stride: Int, padding: Int = 0
    ) throws(GraphError) -> ValueID {
        try add(MaxPool2dOp(window: poolWindow(x, name, "MaxPool2d", kernel, stride, padding)), name, [x])
    }

    public mutating func avgPool(
        _ x: ValueID, _ name: String, kernel: Int, stride: Int, padding: Int = 0
    ) throws(GraphError) -> ValueID {
        try add(AvgPool2dOp(window: poolWindow(x, name, "AvgPool2d", kernel, stride, padding)), name, [x])
    }

    public mutating func globalAvgPool(_ x: ValueID, _ name: String) throws(GraphError) -> ValueID {
        try add(GlobalAvgPoolOp(), name, [x])
    }

    public mutating func flatten(_ x: ValueID, _ name: String) throws(GraphError) -> ValueID {
        try add(ReshapeOp([model.shape(of: x).elementCount]), name, [x])
    }

    public mutating func linear(_ x: ValueID, _ name: String, outFeatures: Int, bias: Bool = true) throws(GraphError)
        -> ValueID
    {
        try add(LinearOp(inFeatures: model.shape(of: x).elementCount, outFeatures: outFeatures, bias: bias), name, [x])
    }

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

/// Concatenation along the channel axis (the first per-sample axis).
public struct ConcatOp: GraphOperator {
    /// `"Concat"`.
    public var kind: String { "Concat" }
    /// A concatenation node; inputs are joined in the order the node lists them.
    public init() {}

    /// The inputs' shape with the channel counts summed; throws unless all inputs have one rank (at least 1) and
    /// agree on every axis but the first.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard let first = inputs.first, first.rank >= 1,
            inputs.allSatisfy({
                $0.rank == first.rank && Array($0.dimensions.dropFirst()) == Array(first.dimensions.dropFirst())
            })
        else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "inputs that differ only in channels")
        }
        return Shape([inputs.reduce(0) { $0 + $1[0] }] + first.dimensions.dropFirst())
    }

    /// Copies each sample's inputs one after the other into the sample's output.
    public func forward(_ c: NodeContext) throws(GraphError) {
        forEachSlice(c) { out, input, count in out.update(from: input, count: count) }
    }

    /// Accumulates each input's slice of the output gradient into that input's gradient.
    public func backward(_ c: NodeContext) {
        let sample = c.outputShape.elementCount
        var offset = 0
        for (k, shape) in c.inputShapes.enumerated() {
            let count = shape.elementCount
            if let dx = c.inputGrads[k] {
                for n in 0..<c.batch {
                    let src = c.outputGrad + n * sample + offset, dst = dx + n * count
                    for i in 0..<count { dst[i] += src[i] }
                }
            }
            offset += count
        }
    }

    private func forEachSlice(
        _ c: NodeContext, _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    ) {
        let sample = c.outputShape.elementCount
        var offset = 0
        for (k, shape) in c.inputShapes.enumerated() {
            let count = shape.elementCount
            for n in 0..<c.batch { body(c.output + n * sample + offset, c.inputs[k] + n * count, count) }
            offset += count
        }
    }
}

/// Nearest-neighbour 2x upsampling: `[C, H, W] -> [C, 2H, 2W]` (PyTorch `Upsample(scale_factor=2)`).
public struct UpsampleNearest2xOp: GraphOperator {
    /// `"UpsampleNearest2x"`.
    public var kind: String { "UpsampleNearest2x" }
    /// An upsampling node; it owns no tensors.
    public init() {}

    /// `[C, 2H, 2W]`; throws unless there is one input `[C, H, W]`.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0].rank == 3 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input [C, H, W]")
        }
        return [inputs[0][0], 2 * inputs[0][1], 2 * inputs[0][2]]
    }

    /// Repeats every pixel in a 2x2 block.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let (h, w) = (c.inputShapes[0][1], c.inputShapes[0][2])
        for p in 0..<(c.batch * c.inputShapes[0][0]) {
            let src = c.inputs[0] + p * h * w, dst = c.output + p * 4 * h * w
            for y in 0..<(2 * h) {
                let s = src + (y / 2) * w, d = dst + y * 2 * w
                for x in 0..<(2 * w) { d[x] = s[x / 2] }
            }
        }
    }

    /// Accumulates into each input pixel the sum of the gradients of its 2x2 output block.
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        let (h, w) = (c.inputShapes[0][1], c.inputShapes[0][2])
        for p in 0..<(c.batch * c.inputShapes[0][0]) {
            let src = c.outputGrad + p * 4 * h * w, dst = dx + p * h * w
            for y in 0..<(2 * h) {
                let s = src + y * 2 * w, d = dst + (y / 2) * w
                for x in 0..<(2 * w) { d[x / 2] += s[x] }
            }
        }
    }
}

/// Reinterprets each sample with a new shape of the same size (flatten is `Reshape([C * H * W])`).
public struct ReshapeOp: GraphOperator {
    /// The new per-sample shape; same element count as the input.
    public let shape: Shape
    /// `"Reshape"`.
    public var kind: String { "Reshape" }
    /// A node giving each sample the per-sample shape `shape` (no batch dimension).
    public init(_ shape: Shape) { self.shape = shape }

    /// `shape`; throws unless there is one input with as many elements.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0].elementCount == shape.elementCount else {
            throw .shapeMismatch(
                node: node, op: kind, inputs: inputs,
                expected: "one input of \(shape.elementCount) elements for \(shape)")
        }
        return shape
    }

    /// Copies the input unchanged: row-major data is the same under any shape.
    public func forward(_ c: NodeContext) throws(GraphError) {
        c.output.update(from: c.inputs[0], count: c.outputCount)
    }

    /// Accumulates the output gradient unchanged into the input gradient.
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        for i in 0..<c.outputCount { dx[i] += c.outputGrad[i] }
    }
}

/// Label embedding (PyTorch `Embedding`): each sample's label (an integer stored as a float, input shape `[]`)
/// selects a row of `weight [classes, dimension]`. Labels receive no gradient.
public struct EmbeddingOp: GraphOperator {
    /// The number of labels, the rows of `weight`.
    public let classes: Int
    /// The length of each embedding vector, the output's per-sample shape `[dimension]`.
    public let dimension: Int
    /// `"Embedding"`.
    public var kind: String { "Embedding" }

    /// An embedding of `classes` labels into vectors of `dimension`.
    public init(classes: Int, dimension: Int) { (self.classes, self.dimension) = (classes, dimension) }

    /// `[dimension]`; throws unless there is one input with one element per sample.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1, inputs[0].elementCount == 1 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one label per sample (shape [])")
        }
        return [dimension]
    }

    /// `weight [classes, dimension]`, drawn from `N(0, 1)` (PyTorch's default).
    public var tensorSpecs: [TensorSpec] {
        [TensorSpec("weight", [classes, dimension], .parameter, .normal(standardDeviation: 1))]
    }

    /// Copies row `label` of `weight` for each sample; throws ``GraphError/labelOutOfRange(node:label:classes:)`` for
    /// a label that is not an integer in `0..<classes`.
    public func forward(_ c: NodeContext) throws(GraphError) {
        for n in 0..<c.batch {
            let label = c.inputs[0][n]
            guard label >= 0, label < Float(classes), label.rounded() == label else {
                throw .labelOutOfRange(node: c.name, label: label, classes: classes)
            }
            (c.output + n * dimension).update(from: c.tensors[0] + Int(label) * dimension, count: dimension)
        }
    }

    /// Accumulates each sample's output gradient into the `weight` row of its label (the labels get none).
    public func backward(_ c: NodeContext) {
        guard let dw = c.tensorGrads[0] else { return }
        for n in 0..<c.batch {
            let row = dw + Int(c.inputs[0][n]) * dimension, dy = c.outputGrad + n * dimension
            for i in 0..<dimension { row[i] += dy[i] }
        }
    }
}

/// Constant padding of an image's planes: `[C, H, W] -> [C, top + H + bottom, left + W + right]`, the new pixels
/// set to `value` (PyTorch's `ConstantPad2d`, ONNX's Pad in constant mode; TF-style "same" convolutions pad one
/// more pixel at the end than at the start).
public struct PadOp: GraphOperator {
    /// Pixels added above, below, left and right (each at least 0).
    public let top: Int, bottom: Int, left: Int, right: Int
    /// The value of the added pixels.
    public let value: Float
    /// `"ConstantPad2d"`.
    public var kind: String { "ConstantPad2d" }

    /// A node padding by the given number of pixels per side with `value` (0 by default).
    public init(top: Int, bottom: Int, left: Int, right: Int, value: Float = 0) {
        (self.top, self.bottom, self.left, self.right, self.value) = (top, bottom, left, right, value)
    }

    /// The padded shape; throws unless there is one input `[C, H, W]` and every padding is at least 0.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        // Pads beyond 2^20 (far above any network's) could overflow the padded size.
        guard inputs.count == 1, inputs[0].rank == 3,
            [top, bottom, left, right].allSatisfy({ (0...(1 << 20)).contains($0) })
        else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input [C, H, W], pads 0 to 2^20")
        }
        return [inputs[0][0], top + inputs[0][1] + bottom, left + inputs[0][2] + right]
    }

    /// Fills the output with `value` and copies each plane's rows into its interior.
    public func forward(_ c: NodeContext) throws(GraphError) {
        c.output.update(repeating: value, count: c.outputCount)
        let (h, w) = (c.inputShapes[0][1], c.inputShapes[0][2]), (oh, ow) = (top + h + bottom, left + w + right)
        for p in 0..<(c.batch * c.inputShapes[0][0]) {
            for y in 0..<h {
                (c.output + (p * oh + top + y) * ow + left).update(from: c.inputs[0] + (p * h + y) * w, count: w)
            }
        }
    }

    /// Accumulates the interior of the output gradient into the input gradient (the added pixels are constants).
    public func backward(_ c: NodeContext) {
        guard let dx = c.inputGrads[0] else { return }
        let (h, w) = (c.inputShapes[0][1], c.inputShapes[0][2]), (oh, ow) = (top + h + bottom, left + w + right)
        for p in 0..<(c.batch * c.inputShapes[0][0]) {
            for y in 0..<h {
                let src = c.outputGrad + (p * oh + top + y) * ow + left, dst = dx + (p * h + y) * w
                for x in 0..<w { dst[x] += src[x] }
            }
        }
    }
}

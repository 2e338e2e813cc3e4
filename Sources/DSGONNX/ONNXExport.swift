import DSGCore
import Foundation
import SwiftProtobuf

/// Writes a ``DSGCore/Model`` as an ONNX file that onnxruntime and other runtimes load, and that
/// ``ONNXImport`` reads back into the same graph.
///
/// Every node becomes the ONNX operator computing the same function at operator set 13 (14 when the model has a
/// HardSwish, which opset 13 lacks), with its tensors as Float32 initializers named as in the model
/// (`layer1.0.conv1.weight`), so a PyTorch state dict's names survive the round trip. The batch size stays free.
/// With an ``ONNXQuantization``, the model is written in the QDQ form runtimes consume: integer weights with a
/// per-channel DequantizeLinear, and QuantizeLinear/DequantizeLinear pairs for the fake-quantization nodes.
/// Operators of sample generation (conditional BatchNorm, embeddings, upsampling) and a fake-quantization node
/// the description does not cover are refused by name.
public enum ONNXExport {
    /// The operator set written, unless the model needs a newer one (HardSwish: 14).
    public static let operatorSet = 13

    /// The bytes of `model` as an ONNX file, in QDQ form where `quantization` describes its quantizers.
    public static func data(of model: Model, quantization: ONNXQuantization = ONNXQuantization())
        throws(ONNXExportError) -> Data
    {
        var writer = ONNXGraphWriter(model: model, quantization: quantization)
        try writer.run()
        var proto = Onnx_ModelProto()
        proto.irVersion = 7  // IR 7 is the version of operator sets 12 to 14
        proto.producerName = "swift-dsg"
        var set = Onnx_OperatorSetIdProto()
        set.version = Int64(writer.needsOpset14 ? 14 : operatorSet)
        proto.opsetImport = [set]
        proto.graph = writer.graph
        do { return try proto.serializedData() } catch {
            throw .unwritable(file: "model", reason: String(describing: error))
        }
    }

    /// Writes `model` to `url` atomically (a reader never sees half a file), in QDQ form where `quantization`
    /// describes its quantizers.
    public static func write(_ model: Model, quantization: ONNXQuantization = ONNXQuantization(), to url: URL)
        throws(ONNXExportError)
    {
        let bytes = try data(of: model, quantization: quantization)
        do { try bytes.write(to: url, options: .atomic) } catch {
            throw .unwritable(file: url.lastPathComponent, reason: (error as NSError).localizedDescription)
        }
    }
}

/// Why a model cannot be written as ONNX.
public enum ONNXExportError: Error, Equatable, CustomStringConvertible {
    /// A node whose operator has no ONNX form here.
    case unsupportedOperator(node: String, kind: String)
    /// A quantization description that does not fit the model (a weight of another size, a missing node).
    case quantization(node: String, reason: String)
    /// A model with other than one input and one output.
    case graphShape(reason: String)
    /// The file could not be written; `reason` is the system's message.
    case unwritable(file: String, reason: String)

    /// One line naming the node or file.
    public var description: String {
        switch self {
        case .unsupportedOperator(let node, let kind):
            return "node '\(node)': the exporter has no ONNX form for \(kind)"
        case .graphShape(let reason): return "the model cannot be written as ONNX: \(reason)"
        case .quantization(let node, let reason): return "node '\(node)': cannot be written in QDQ form: \(reason)"
        case .unwritable(let file, let reason): return "\(file): cannot be written (\(reason))"
        }
    }
}

/// The state of one export: the graph being written and the ONNX name of every model value.
struct ONNXGraphWriter {
    let model: Model
    let quantization: ONNXQuantization
    var graph = Onnx_GraphProto()
    /// Whether a node needs operator set 14 (HardSwish).
    var needsOpset14 = false
    private var names: [String] = []

    init(model: Model, quantization: ONNXQuantization) {
        (self.model, self.quantization) = (model, quantization)
        names = model.inputs.map(\.name)
    }

    mutating func run() throws(ONNXExportError) {
        guard model.inputs.count == 1, model.outputs.count == 1 else {
            throw .graphShape(reason: "\(model.inputs.count) inputs and \(model.outputs.count) outputs, not one each")
        }
        graph.name = "swift-dsg"
        graph.input = [Self.valueInfo(model.inputs[0].name, model.inputs[0].shape)]
        let nodes = Set(model.nodes.map(\.name))
        if let stray = (Array(quantization.weights.keys) + Array(quantization.activations.keys)).sorted().first(where: {
            !nodes.contains($0)
        }) {
            throw .quantization(node: stray, reason: "the model has no such node")
        }
        for node in model.nodes {
            names.append(node.name)
            try write(node)
        }
        let output = model.outputs[0]
        graph.output = [Self.valueInfo(names[output.index], model.shape(of: output))]
    }

    /// `[batch, shape...]` Float32 with a symbolic batch.
    static func valueInfo(_ name: String, _ shape: Shape) -> Onnx_ValueInfoProto {
        var type = Onnx_TypeProto.Tensor()
        type.elemType = ONNXDataType.float
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = "batch"
        type.shape.dim =
            [batch]
            + shape.dimensions.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                dim.dimValue = Int64(d)
                return dim
            }
        var v = Onnx_ValueInfoProto()
        v.name = name
        v.type.value = .tensorType(type)
        return v
    }

    // MARK: - Tensors and nodes

    /// Adds a Float32 initializer (little-endian `raw_data`) and returns its name.
    @discardableResult
    mutating func initializer(_ name: String, _ tensor: Tensor) -> String {
        var t = Onnx_TensorProto()
        (t.name, t.dataType, t.dims) = (name, ONNXDataType.float, tensor.shape.dimensions.map(Int64.init))
        t.rawData = tensor.scalars.withUnsafeBytes { Data($0) }  // little-endian on every platform Swift runs here
        graph.initializer.append(t)
        return name
    }

    /// Adds an INT8 (`signed`) or UINT8 initializer of `dims` and returns its name; throws for a value outside
    /// the type.
    mutating func bytes(_ name: String, _ dims: [Int], _ values: [Int], signed: Bool) throws(ONNXExportError) -> String
    {
        let range = signed ? -128...127 : 0...255
        if let bad = values.first(where: { !range.contains($0) }) {
            throw .quantization(node: name, reason: "\(bad) is outside \(signed ? "INT8" : "UINT8")")
        }
        var t = Onnx_TensorProto()
        (t.name, t.dataType, t.dims) = (name, signed ? ONNXDataType.int8 : ONNXDataType.uint8, dims.map(Int64.init))
        t.rawData = Data(values.map { UInt8(truncatingIfNeeded: $0) })
        graph.initializer.append(t)
        return name
    }

    /// Adds an INT64 initializer and returns its name.
    mutating func integers(_ name: String, _ values: [Int]) -> String {
        var t = Onnx_TensorProto()
        (t.name, t.dataType, t.dims, t.int64Data) = (
            name, ONNXDataType.int64, [Int64(values.count)], values.map(Int64.init)
        )
        graph.initializer.append(t)
        return name
    }

    /// Adds a Float32 scalar initializer and returns its name.
    mutating func scalar(_ name: String, _ value: Float) -> String {
        initializer(name, Tensor(shape: [], scalars: [value]))
    }

    mutating func emit(
        _ op: String, _ inputs: [String], _ output: String, name: String, _ attributes: [Onnx_AttributeProto] = []
    ) {
        var n = Onnx_NodeProto()
        (n.opType, n.input, n.output, n.name, n.attribute) = (op, inputs, [output], name, attributes)
        graph.node.append(n)
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        (a.name, a.type, a.ints) = (name, .ints, values.map(Int64.init))
        return a
    }

    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        (a.name, a.type, a.i) = (name, .int, Int64(value))
        return a
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        (a.name, a.type, a.f) = (name, .float, value)
        return a
    }

    /// Kernel, strides, pads, dilations (and the group) of a convolution's or pooling window's geometry.
    static func window(_ g: ConvGeometry, group: Bool) -> [Onnx_AttributeProto] {
        var attributes = [
            ints("kernel_shape", [g.kernelH, g.kernelW]), ints("strides", [g.strideH, g.strideW]),
            ints("pads", [g.padH, g.padW, g.padH, g.padW]),
        ]
        if group { attributes += [ints("dilations", [g.dilationH, g.dilationW]), int("group", g.groups)] }
        return attributes
    }

    /// The model tensor `<node>.<suffix>`.
    func value(_ node: Node, _ suffix: String) throws(ONNXExportError) -> Tensor {
        do { return try model.tensor(named: node.name + "." + suffix) } catch {
            throw .graphShape(reason: "node '\(node.name)' has no tensor '\(node.name).\(suffix)'")
        }
    }

    /// The model tensor `<node>.<suffix>` as an initializer of that name.
    mutating func tensor(_ node: Node, _ suffix: String) throws(ONNXExportError) -> String {
        initializer(node.name + "." + suffix, try value(node, suffix))
    }

    /// The layer's weight: the Float32 initializer, or in QDQ form its INT8 values dequantized per output channel.
    mutating func weight(_ node: Node) throws(ONNXExportError) -> String {
        guard let q = quantization.weights[node.name] else { return try tensor(node, "weight") }
        let w = try value(node, "weight"), channels = w.shape[0]
        guard q.values.count == w.elementCount, q.scales.count == channels,
            (q.zeroPoints?.count ?? channels) == channels
        else {
            throw .quantization(node: node.name, reason: "its integer weight does not have the shape \(w.shape)")
        }
        let y = node.name + ".weight"
        let scale = initializer(y + "_scale", Tensor(shape: [channels], scalars: q.scales))
        let inputs: [String]
        if let zeroPoints = q.zeroPoints {
            inputs = [
                try bytes(y + "_quantized", w.shape.dimensions, q.values, signed: true), scale,
                try bytes(y + "_zero_point", [channels], zeroPoints, signed: true),
            ]
        } else {
            guard q.values.allSatisfy({ Int32(exactly: $0) != nil }) else {
                throw .quantization(node: node.name, reason: "its integer weight exceeds INT32")
            }
            var t = Onnx_TensorProto()
            (t.name, t.dataType, t.dims) = (y + "_quantized", ONNXDataType.int32, w.shape.dimensions.map(Int64.init))
            t.int32Data = q.values.map { Int32($0) }
            graph.initializer.append(t)
            inputs = [t.name, scale]
        }
        emit("DequantizeLinear", inputs, y, name: y, [Self.int("axis", 0)])
        return y
    }

    /// The layer's bias: the Float32 initializer, or its INT32 values dequantized per output channel.
    mutating func bias(_ node: Node) throws(ONNXExportError) -> String {
        guard let b = quantization.weights[node.name]?.bias else { return try tensor(node, "bias") }
        let channels = try value(node, "bias").elementCount
        guard b.values.count == channels, b.scales.count == channels, b.values.allSatisfy({ Int32(exactly: $0) != nil })
        else {
            throw .quantization(node: node.name, reason: "its integer bias is not \(channels) INT32 values")
        }
        let y = node.name + ".bias"
        var t = Onnx_TensorProto()
        (t.name, t.dataType, t.dims) = (y + "_quantized", ONNXDataType.int32, [Int64(channels)])
        t.int32Data = b.values.map { Int32($0) }
        graph.initializer.append(t)
        let scale = initializer(y + "_scale", Tensor(shape: [channels], scalars: b.scales))
        emit("DequantizeLinear", [t.name, scale], y, name: y, [Self.int("axis", 0)])
        return y
    }

    /// A fake-quantization node as [Clip,] QuantizeLinear and DequantizeLinear.
    mutating func quantize(_ node: Node, _ x: String, _ y: String) throws(ONNXExportError) {
        guard let q = quantization.activations[node.name] else {
            throw .unsupportedOperator(node: node.name, kind: node.op.kind)
        }
        var input = x
        if let clip = q.clip {
            input = y + ".clipped"
            emit("Clip", [x, scalar(y + ".min", clip.low), scalar(y + ".max", clip.high)], input, name: input)
        }
        let scale = scalar(y + ".scale", q.scale)
        let zero = try bytes(y + ".zero_point", [], [q.zeroPoint], signed: q.signed)
        emit("QuantizeLinear", [input, scale, zero], y + ".quantized", name: y + ".quantize")
        emit("DequantizeLinear", [y + ".quantized", scale, zero], y, name: y)
    }

    mutating func write(_ node: Node) throws(ONNXExportError) {
        let x = node.inputs.map { names[$0.index] }, y = node.name
        switch node.op {
        case let op as Conv2dOp:
            let b = op.hasBias ? [try bias(node)] : []
            emit("Conv", [x[0], try weight(node)] + b, y, name: y, Self.window(op.geometry, group: true))
        case let op as BatchNormOp:
            let channels = op.channels
            let scale =
                op.affine
                ? try tensor(node, "weight") : initializer(y + ".weight", Tensor(shape: [channels], repeating: 1))
            let shift = op.affine ? try tensor(node, "bias") : initializer(y + ".bias", Tensor(shape: [channels]))
            let inputs = [x[0], scale, shift, try tensor(node, "running_mean"), try tensor(node, "running_var")]
            // ONNX's momentum weighs the old running value; PyTorch's, which BatchNormOp keeps, the new one.
            emit(
                "BatchNormalization", inputs, y, name: y,
                [Self.float("epsilon", op.epsilon), Self.float("momentum", 1 - op.momentum)])
        case let op as ActivationOp: write(op.activation, x[0], y)
        case is AddOp:
            // ((x0 + x1) + x2) ...: the order AddOp sums in, so the result is the same to the last bit.
            var sum = x[0]
            for (k, term) in x.dropFirst().enumerated() {
                let out = k == x.count - 2 ? y : "\(y).sum\(k)"
                emit("Add", [sum, term], out, name: out)
                sum = out
            }
        case is MultiplyOp, is ChannelMultiplyOp: emit("Mul", x, y, name: y)
        case is ChannelAddOp: emit("Add", x, y, name: y)
        case let op as ScaleOp: emit("Mul", [x[0], scalar(y + ".factor", op.factor)], y, name: y)
        case let op as BiasOp:
            let perChannel = model.shape(of: node.inputs[0]).rank == 3 ? [op.channels, 1, 1] : [op.channels]
            let bias = try value(node, "bias").scalars
            emit("Add", [x[0], initializer(y + ".bias", Tensor(shape: Shape(perChannel), scalars: bias))], y, name: y)
        case is GlobalAvgPoolOp: emit("GlobalAveragePool", x, y, name: y)
        case let op as MaxPool2dOp: emit("MaxPool", x, y, name: y, Self.window(op.window, group: false))
        case let op as AvgPool2dOp:
            // AvgPool2dOp counts the padding in the divisor, as PyTorch's default.
            emit(
                "AveragePool", x, y, name: y, Self.window(op.window, group: false) + [Self.int("count_include_pad", 1)])
        case let op as PadOp:
            let pads = integers(y + ".pads", [0, 0, op.top, op.left, 0, 0, op.bottom, op.right])
            emit("Pad", [x[0], pads, scalar(y + ".value", op.value)], y, name: y)
        case let op as ReshapeOp:
            emit("Reshape", [x[0], integers(y + ".shape", [-1] + op.shape.dimensions)], y, name: y)
        case let op as LinearOp:
            let b = op.hasBias ? [try bias(node)] : []
            emit("Gemm", [x[0], try weight(node)] + b, y, name: y, [Self.int("transB", 1)])
        case is ConcatOp: emit("Concat", x, y, name: y, [Self.int("axis", 1)])
        case _ where node.op.kind == "FakeQuant": try quantize(node, x[0], y)
        default: throw .unsupportedOperator(node: node.name, kind: node.op.kind)
        }
    }

    /// ReLU6 and clips as Clip with bound inputs (opset 11+), the others as their own operator.
    mutating func write(_ activation: Activation, _ x: String, _ y: String) {
        switch activation {
        case .relu: emit("Relu", [x], y, name: y)
        case .relu6: emit("Clip", [x, scalar(y + ".min", 0), scalar(y + ".max", 6)], y, name: y)
        case .clip(let lower, let upper):
            emit("Clip", [x, scalar(y + ".min", lower), scalar(y + ".max", upper)], y, name: y)
        case .leakyReLU(let slope): emit("LeakyRelu", [x], y, name: y, [Self.float("alpha", slope)])
        case .tanh: emit("Tanh", [x], y, name: y)
        case .sigmoid: emit("Sigmoid", [x], y, name: y)
        case .hardSigmoid(let alpha, let beta):
            emit("HardSigmoid", [x], y, name: y, [Self.float("alpha", alpha), Self.float("beta", beta)])
        case .hardSwish:
            needsOpset14 = true
            emit("HardSwish", [x], y, name: y)
        }
    }
}

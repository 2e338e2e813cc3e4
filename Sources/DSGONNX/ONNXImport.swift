import DSGCore
import Foundation
import SwiftProtobuf

/// Reads an ONNX file into a ``DSGCore/Model``: the same graph every DSG, PTQ and QAT path uses, with the
/// BatchNorm layers, their running statistics and every parameter named as in the file.
///
/// The graph must take one Float32 input `[N, ...]` (N free; DSG needs an image) and have one output. Parameters of a
/// node named like PyTorch's state dict (`layer1.0.conv1.weight`) give the node that name (`layer1.0.conv1`),
/// so a PyTorch export keeps PyTorch's tensor names; other nodes keep their ONNX names. Operators and
/// attributes outside what is implemented are refused by name (``ONNXError``), never approximated.
public enum ONNXImport {
    /// The newest IR version the importer reads (PyTorch's exporters write IR 7-9).
    public static let maximumIRVersion = 10
    /// The default-domain operator sets the importer reads (PyTorch's exporters write 11-20; ONNX's own test
    /// data goes back to 1). Attributes of older versions that change a result are refused by name.
    public static let operatorSets = 1...20

    /// The operators the importer implements (the attributes and forms each supports are in Docs/ONNX.md).
    public static let supportedOperators: Set<String> = [
        "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Tanh", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Add",
        "Mul", "Sub", "GlobalAveragePool", "MaxPool", "AveragePool", "Pad", "Flatten", "Reshape", "Gemm", "MatMul",
        "Transpose", "Identity", "Dropout", "Constant", "ReduceMean", "Concat", "Squeeze", "Unsqueeze", "Shape",
        "Gather", "Cast", "ConstantOfShape", "Slice",
    ]

    /// Reads and imports the ONNX file at `url`.
    public static func model(contentsOf url: URL) throws -> Model {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ONNXError.unreadable(file: url.lastPathComponent, reason: (error as NSError).localizedDescription)
        }
        return try model(from: data, file: url.lastPathComponent)
    }

    /// Imports the bytes of an ONNX file; `file` names it in errors.
    public static func model(from data: Data, file: String) throws -> Model {
        let proto: Onnx_ModelProto
        do { proto = try Onnx_ModelProto(serializedBytes: data) } catch {
            throw ONNXError.notONNX(file: file, reason: String(describing: error))
        }
        return try model(from: proto, file: file)
    }

    /// Imports a decoded model. `requireBatchNorm: false` is the conformance runner's: ONNX's single-operator
    /// cases have no BatchNorm, which only DSG needs, not the import.
    static func model(from proto: Onnx_ModelProto, file: String, requireBatchNorm: Bool = true) throws -> Model {
        guard proto.hasGraph, proto.irVersion > 0 else {
            throw ONNXError.notONNX(file: file, reason: "no graph or IR version")
        }
        guard proto.irVersion <= maximumIRVersion else {
            throw ONNXError.unsupportedVersion(file: file, what: "IR version \(proto.irVersion)")
        }
        // Every node of the default domain follows this version of its operator's specification.
        guard let opset = proto.opsetImport.last(where: { $0.domain.isEmpty || $0.domain == "ai.onnx" }) else {
            throw ONNXError.unsupportedVersion(file: file, what: "a graph without the default operator set")
        }
        guard operatorSets.contains(Int(opset.version)) else {
            throw ONNXError.unsupportedVersion(file: file, what: "operator set \(opset.version)")
        }
        var graph = ONNXGraphImporter(graph: proto.graph, file: file, opset: Int(opset.version))
        return try graph.run(requireBatchNorm: requireBatchNorm)
    }
}

/// The state of one import: the model being built and what every ONNX value name stands for.
struct ONNXGraphImporter {
    let graph: Onnx_GraphProto
    let file: String
    /// The default domain's operator set: attributes' defaults changed across versions.
    let opset: Int
    let model = Model()
    /// ONNX value name → the model's value.
    private var values: [String: ValueID] = [:]
    /// Initializers and the outputs of `Constant` nodes, by name.
    private var constants: [String: Onnx_TensorProto] = [:]
    /// The node names given so far (they must be unique in the model).
    private var names = Set<String>()
    private var random = SeededRandom(seed: 0)
    /// Value name → the nodes that read it, for fusing a MatMul with the Add of its bias.
    private let readers: [String: [Int]]
    /// Nodes already imported as part of an earlier one (the Add a MatMul took as its bias).
    private var fused = Set<Int>()

    init(graph: Onnx_GraphProto, file: String, opset: Int) {
        self.graph = graph
        self.file = file
        self.opset = opset
        var readers: [String: [Int]] = [:]
        for (i, node) in graph.node.enumerated() {
            for name in Set(node.input) { readers[name, default: []].append(i) }
        }
        self.readers = readers
        for t in graph.initializer { constants[t.name] = t }
        let initialized = Set(graph.initializer.map(\.name))
        if let input = graph.input.first(where: { !initialized.contains($0.name) }),
            case .tensorType(let type) = input.type.value, let first = type.shape.dim.first,
            case .dimValue(let d) = first.value
        {
            fixedBatch = Int(d)
        } else {
            fixedBatch = nil
        }
    }

    mutating func run(requireBatchNorm: Bool) throws -> Model {
        guard !requireBatchNorm || graph.node.contains(where: { $0.opType == "BatchNormalization" }) else {
            throw ONNXError.foldedBatchNorm(file: file)
        }
        let inputs = graph.input.filter { constants[$0.name] == nil }
        guard inputs.count == 1 else { throw ONNXError.inputCount(file: file, count: inputs.count) }
        guard graph.output.count == 1 else { throw ONNXError.outputCount(file: file, count: graph.output.count) }
        let input = inputs[0]
        values[input.name] = model.addInput(name: input.name, shape: try sampleShape(of: input))
        for (index, node) in graph.node.enumerated() where !fused.contains(index) {
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                throw ONNXError.unsupportedOperator(node: node.label, op: "\(node.domain).\(node.opType)")
            }
            try importNode(node, index: index)
        }
        let output = graph.output[0].name
        guard let result = values[output] else {
            if constants[output] != nil {
                throw ONNXError.unsupportedAttribute(
                    node: "graph output", op: "Output", attribute: output,
                    value: "a constant (it does not read the input)")
            }
            throw ONNXError.unknownValue(node: "graph output", op: "Output", value: output)
        }
        model.outputs = [result]
        return model
    }

    /// The per-sample shape of an `[N, ...]` Float32 input whose other dimensions are fixed (N may be symbolic):
    /// `[C, H, W]` for an image.
    private func sampleShape(of input: Onnx_ValueInfoProto) throws -> Shape {
        guard case .tensorType(let type) = input.type.value, type.elemType == ONNXDataType.float else {
            throw ONNXError.inputShape(file: file, input: input.name, reason: "not a Float32 tensor")
        }
        let dims = type.shape.dim
        guard dims.count >= 2 else {
            throw ONNXError.inputShape(
                file: file, input: input.name, reason: "\(dims.count) dimensions, expected a batch and a sample")
        }
        let sample = dims.dropFirst().map {
            $0.value.flatMap { v -> Int? in
                if case .dimValue(let d) = v, d > 0 { return Int(d) }
                return nil
            }
        }
        guard sample.allSatisfy({ $0 != nil }) else {
            throw ONNXError.inputShape(
                file: file, input: input.name,
                reason: "every dimension but the batch must be a fixed number (dynamic sizes are not)")
        }
        let shape = Shape(sample.map { $0! })
        guard let count = shape.checkedElementCount, count <= Self.maximumElements else {
            throw ONNXError.inputShape(file: file, input: input.name, reason: "\(shape) is larger than swift-dsg runs")
        }
        return shape
    }

    /// The largest per-sample value the importer builds (2^31 elements), and the largest size, stride,
    /// dilation, padding or group count it reads: bounds far above any CNN that keep every size computation
    /// from overflowing.
    static let maximumElements = 1 << 31, maximumAttribute = 1 << 20

    /// The graph input's batch when the file fixes it, else nil: only a fixed batch of 1 lets a Reshape's or
    /// Squeeze's literal 1 stand for the batch.
    private let fixedBatch: Int?

    // MARK: - Values, constants and names

    private func value(_ name: String, of node: Onnx_NodeProto) throws -> ValueID {
        guard let v = values[name] else {
            if constants[name] != nil {
                throw ONNXError.unsupportedAttribute(
                    node: node.label, op: node.opType, attribute: "input '\(name)'", value: "a constant")
            }
            throw ONNXError.unknownValue(node: node.label, op: node.opType, value: name)
        }
        return v
    }

    private func constant(_ name: String, of node: Onnx_NodeProto) throws -> Onnx_TensorProto {
        guard let t = constants[name] else {
            throw ONNXError.missingInitializer(node: node.label, op: node.opType, tensor: name)
        }
        return t
    }

    /// Input `i` of `node` if it is present and not empty (ONNX marks a skipped optional input with "").
    private func optionalInput(_ node: Onnx_NodeProto, _ i: Int) -> String? {
        i < node.input.count && !node.input[i].isEmpty ? node.input[i] : nil
    }

    /// The model name of a node: the PyTorch module path its weight is named by (`conv1.weight` → `conv1`),
    /// else the ONNX node name, else operator and position; unique in the model.
    private mutating func nodeName(_ node: Onnx_NodeProto, index: Int, weight: String? = nil) -> String {
        var base = node.name.isEmpty ? "\(node.opType)_\(index)" : node.name
        if let weight, weight.hasSuffix(".weight"), weight.count > ".weight".count {
            base = String(weight.dropLast(".weight".count))
        }
        var name = base, k = 1
        while names.contains(name) {
            name = "\(base)_\(k)"
            k += 1
        }
        names.insert(name)
        return name
    }

    /// Adds `op` as node `name` reading `inputs`, sets its tensors from the file (suffix → ONNX tensor), and
    /// binds the node's first output.
    private mutating func add(
        _ op: any GraphOperator, _ name: String, _ inputs: [ValueID], _ node: Onnx_NodeProto,
        tensors: [(String, Tensor)] = []
    ) throws {
        let output = try model.add(op, name: name, inputs: inputs, using: &random)
        guard let count = model.shape(of: output).checkedElementCount, count <= Self.maximumElements else {
            throw unsupported(node, "output shape", "\(model.shape(of: output)) (larger than swift-dsg runs)")
        }
        for (suffix, tensor) in tensors { try model.setTensor(named: name + "." + suffix, to: tensor) }
        values[node.output[0]] = output
    }

    // MARK: - Operators

    /// The attributes each operator's import knows (reads, or may ignore because they cannot change an inference
    /// result, as Dropout's `ratio`); any other attribute is refused rather than ignored, so that
    /// a setting the importer does not implement can never change the result unnoticed.
    static let knownAttributes: [String: Set<String>] = [
        "Conv": ["kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"],
        "Pad": ["mode", "pads", "value"],
        "BatchNormalization": ["epsilon", "momentum", "training_mode", "spatial", "is_test"],
        "LeakyRelu": ["alpha"], "HardSigmoid": ["alpha", "beta"], "Clip": ["min", "max"],
        "MaxPool": ["kernel_shape", "strides", "pads", "dilations", "ceil_mode", "storage_order", "auto_pad"],
        "AveragePool": ["kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad", "auto_pad"],
        "Flatten": ["axis"], "Reshape": ["allowzero"], "Gemm": ["alpha", "beta", "transA", "transB"],
        "Dropout": ["ratio", "seed", "is_test"], "ReduceMean": ["axes", "keepdims", "noop_with_empty_axes"],
        "Concat": ["axis"], "Squeeze": ["axes"], "Unsqueeze": ["axes"], "Shape": ["start", "end"], "Gather": ["axis"],
        "Transpose": ["perm"], "Cast": ["to"], "ConstantOfShape": ["value"], "Slice": ["starts", "ends", "axes"],
        "Constant": ["value", "value_float", "value_floats", "value_int", "value_ints"],
    ]

    /// How many inputs each operator needs at least (optional ones may follow).
    static let minimumInputs: [String: Int] = [
        "Conv": 2, "BatchNormalization": 5, "Add": 2, "Sub": 2, "Mul": 2, "Reshape": 2, "Gemm": 2, "MatMul": 2,
        "Constant": 0,
        "Gather": 2,
    ]

    private mutating func importNode(_ node: Onnx_NodeProto, index: Int) throws {
        let inputs = Self.minimumInputs[node.opType] ?? 1
        guard node.input.count >= inputs, node.input.prefix(inputs).allSatisfy({ !$0.isEmpty }) else {
            throw unsupported(node, "inputs", "\(node.input) (\(inputs) needed)")
        }
        let known = Self.knownAttributes[node.opType] ?? []
        if let other = node.attribute.first(where: { !known.contains($0.name) }) {
            throw unsupported(node, other.name, "set (the importer does not implement it)")
        }
        guard !node.output.isEmpty else {
            throw ONNXError.unsupportedAttribute(node: node.label, op: node.opType, attribute: "outputs", value: "none")
        }
        let given = node.input.filter { !$0.isEmpty }
        if ONNXConstantFolding.operators.contains(node.opType), !given.isEmpty,
            given.allSatisfy({ constants[$0] != nil })
        {
            let inputs = node.input.map { $0.isEmpty ? nil : constants[$0] }
            constants[node.output[0]] = try ONNXConstantFolding.fold(node, inputs, opset: opset)
            return
        }
        switch node.opType {
        case "Conv": try importConv(node, index: index)
        case "BatchNormalization": try importBatchNorm(node, index: index)
        case "Relu": try activation(.relu, node, index: index)
        case "LeakyRelu": try activation(.leakyReLU(slope: try node.float("alpha", default: 0.01)), node, index: index)
        case "Tanh": try activation(.tanh, node, index: index)
        case "Sigmoid": try activation(.sigmoid, node, index: index)
        case "HardSigmoid":
            let kind = Activation.hardSigmoid(
                alpha: try node.float("alpha", default: 0.2), beta: try node.float("beta", default: 0.5))
            try activation(kind, node, index: index)
        case "HardSwish": try activation(.hardSwish, node, index: index)
        case "Clip": try importClip(node, index: index)
        case "Add": try importAdd(node, index: index)
        case "Sub": try importSub(node, index: index)
        case "Mul": try importMul(node, index: index)
        case "GlobalAveragePool":
            try add(GlobalAvgPoolOp(), nodeName(node, index: index), [try value(node.input[0], of: node)], node)
        case "MaxPool", "AveragePool": try importPool(node, index: index)
        case "Pad": try importPad(node, index: index)
        case "Flatten": try importFlatten(node, index: index)
        case "Reshape": try importReshape(node, index: index)
        case "Gemm": try importGemm(node, index: index)
        case "MatMul": try importMatMul(node, index: index)
        case "Transpose": try importTranspose(node)
        case "Cast":
            guard try node.int("to", default: 0) == Int(ONNXDataType.float) else {
                throw unsupported(node, "to", "\(try node.int("to", default: 0)) on a value (only FLOAT)")
            }
            try passThrough(node)
        case "ConstantOfShape", "Slice", "Gather":
            throw unsupported(node, "inputs", "a value (only constants are computed with)")
        case "Dropout":
            try checkInference(node)
            try passThrough(node)
        case "Identity": try passThrough(node)
        case "Constant": try importConstant(node)
        case "ReduceMean": try importReduceMean(node, index: index)
        case "Concat": try importConcat(node, index: index)
        case "Squeeze", "Unsqueeze": try importSqueeze(node, index: index)
        case "Shape": try importShape(node)
        default: throw ONNXError.unsupportedOperator(node: node.label, op: node.opType)
        }
    }

    /// Passes the input through. PyTorch also writes Identity to give a second name to an initializer it
    /// stored once.
    private mutating func passThrough(_ node: Onnx_NodeProto) throws {
        if let t = constants[node.input[0]] {
            constants[node.output[0]] = t
        } else {
            values[node.output[0]] = try value(node.input[0], of: node)
        }
    }

    /// Dropout is the identity only in inference: a training-mode input (opset 12+) that is not false, a test
    /// flag (before opset 7) that is not set, or a used mask output is refused.
    private func checkInference(_ node: Onnx_NodeProto) throws {
        if let mode = optionalInput(node, 2) {
            guard try constant(mode, of: node).integers().allSatisfy({ $0 == 0 }) else {
                throw unsupported(node, "training_mode", "true (only inference)")
            }
        }
        // Before opset 7 a Dropout without is_test trains.
        guard try node.int("is_test", default: opset < 7 ? 0 : 1) == 1 else {
            throw unsupported(node, "is_test", "0 or absent before opset 7 (only inference)")
        }
        guard node.output.dropFirst().allSatisfy(\.isEmpty) else { throw unsupported(node, "mask output", "used") }
    }

    private func unsupported(_ node: Onnx_NodeProto, _ attribute: String, _ value: String) -> ONNXError {
        .unsupportedAttribute(node: node.label, op: node.opType, attribute: attribute, value: value)
    }

    /// A window's geometry from ONNX's `kernel_shape`, `strides`, `pads` (begin and end per axis, which must
    /// be equal), `dilations` and `auto_pad`, on the `[C, H, W]` input.
    private func window(
        _ node: Onnx_NodeProto, input s: Shape, kernel: (Int, Int), outChannels: Int, groups: Int
    ) throws -> ConvGeometry {
        guard s.rank == 3 else { throw unsupported(node, "input shape", "\(s) (only 2-D images)") }
        let strides = try node.ints("strides", default: [1, 1]),
            dilations = try node.ints("dilations", default: [1, 1])
        guard strides.count == 2, dilations.count == 2, (strides + dilations).allSatisfy({ $0 > 0 }) else {
            throw unsupported(node, "strides/dilations", "\(strides)/\(dilations) (2-D and positive)")
        }
        var pads = try node.ints("pads", default: [0, 0, 0, 0])
        for (name, values) in [
            ("strides", strides), ("dilations", dilations), ("pads", pads), ("kernel_shape", [kernel.0, kernel.1]),
        ]
        where values.contains(where: { $0 > Self.maximumAttribute }) {
            throw unsupported(node, name, "\(values) (larger than swift-dsg builds)")
        }
        switch try node.string("auto_pad", default: "NOTSET") {
        case "NOTSET": break
        case "VALID": pads = [0, 0, 0, 0]
        case let mode where mode == "SAME_UPPER" || mode == "SAME_LOWER":
            let totals = [(s[1], kernel.0, strides[0], dilations[0]), (s[2], kernel.1, strides[1], dilations[1])].map {
                (size, k, stride, dilation) in
                max(((size + stride - 1) / stride - 1) * stride + (k - 1) * dilation + 1 - size, 0)
            }
            guard totals.allSatisfy({ $0 % 2 == 0 }) else {
                throw unsupported(node, "auto_pad", "\(mode) with uneven padding \(totals)")
            }
            pads = [totals[0] / 2, totals[1] / 2, totals[0] / 2, totals[1] / 2]
        case let mode: throw unsupported(node, "auto_pad", mode)
        }
        guard pads.count == 4, pads[0] == pads[2], pads[1] == pads[3] else {
            throw unsupported(node, "pads", "\(pads) (only equal padding at both ends)")
        }
        do {
            return try ConvGeometry(
                inChannels: s[0], outChannels: outChannels, kernel: kernel, stride: (strides[0], strides[1]),
                padding: (pads[0], pads[1]), dilation: (dilations[0], dilations[1]), groups: groups,
                input: (s[1], s[2]))
        } catch {
            throw GraphError.invalidGeometry(node: node.label, op: node.opType, input: s, reason: error.description)
        }
    }

    private mutating func importConv(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        let weight = try constant(node.input[1], of: node)
        let w = try weight.tensor()
        guard w.shape.rank == 4 else { throw unsupported(node, "weight shape", "\(w.shape) (only 2-D convolution)") }
        let groups = try node.int("group", default: 1)
        guard (1...Self.maximumAttribute).contains(groups) else { throw unsupported(node, "group", "\(groups)") }
        let kernel = try node.ints("kernel_shape", default: [w.shape[2], w.shape[3]])
        guard kernel == [w.shape[2], w.shape[3]] else { throw unsupported(node, "kernel_shape", "\(kernel)") }
        guard s.rank == 3, w.shape[1] * groups == s[0] else {
            throw GraphError.shapeMismatch(
                node: node.label, op: "Conv", inputs: [s, w.shape], expected: "weight [O, C / group, KH, KW]")
        }
        let geometry = try window(
            node, input: s, kernel: (kernel[0], kernel[1]), outChannels: w.shape[0], groups: groups)
        var tensors = [("weight", w)]
        if let b = optionalInput(node, 2) { tensors.append(("bias", try constant(b, of: node).tensor())) }
        let name = nodeName(node, index: index, weight: weight.name)
        try add(Conv2dOp(geometry: geometry, bias: tensors.count == 2), name, [x], node, tensors: tensors)
    }

    private mutating func importBatchNorm(_ node: Onnx_NodeProto, index: Int) throws {
        // Inference form only: training mode (opset 14's attribute, or the running-statistics outputs) is refused.
        // Before opset 7 a BatchNormalization without is_test trains.
        guard try node.int("training_mode", default: 0) == 0, node.output.dropFirst().allSatisfy(\.isEmpty),
            try node.int("is_test", default: opset < 7 ? 0 : 1) == 1
        else { throw unsupported(node, "training_mode", "1 or is_test 0 (only the inference form)") }
        guard try node.int("spatial", default: 1) == 1 else { throw unsupported(node, "spatial", "0") }
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        let scale = try constant(node.input[1], of: node)
        let parts = try [scale] + node.input[2...4].map { try constant($0, of: node) }
        let tensors = try zip(["weight", "bias", "running_mean", "running_var"], parts).map { ($0, try $1.tensor()) }
        guard s.rank >= 1 else { throw unsupported(node, "input shape", "\(s)") }
        // ONNX's momentum weighs the old running value (0.9); PyTorch's, which BatchNormOp keeps, the new one.
        let momentum = try node.float("momentum", default: 0.9)
        let op = BatchNormOp(channels: s[0], epsilon: try node.float("epsilon", default: 1e-5), momentum: 1 - momentum)
        try add(op, nodeName(node, index: index, weight: scale.name), [x], node, tensors: tensors)
    }

    private mutating func activation(_ kind: Activation, _ node: Onnx_NodeProto, index: Int) throws {
        try add(ActivationOp(kind), nodeName(node, index: index), [try value(node.input[0], of: node)], node)
    }

    /// Clip: bounds [0, 6] are ReLU6, [0, ∞) ReLU, none the identity, any others a clip; bounds come from inputs
    /// (opset 11+) or attributes, and a missing one is unbounded.
    private mutating func importClip(_ node: Onnx_NodeProto, index: Int) throws {
        func bound(_ i: Int, _ attribute: String, _ absent: Float) throws -> Float {
            if let name = optionalInput(node, i) {
                let values = try constant(name, of: node).floats()
                guard values.count == 1 else { throw unsupported(node, attribute, "\(values)") }
                return values[0]
            }
            return try node.float(attribute, default: absent)
        }
        let low = try bound(1, "min", -.infinity), high = try bound(2, "max", .infinity)
        guard !low.isNaN, !high.isNaN else { throw unsupported(node, "bounds", "[\(low), \(high)]") }
        switch (low, high) {
        case (0, 6): try activation(.relu6, node, index: index)
        case (0, .infinity): try activation(.relu, node, index: index)
        case (-.infinity, .infinity): try passThrough(node)
        // min(max(x, low), high) is high everywhere when low > high, as ONNX specifies.
        default: try activation(.clip(lower: low, upper: high), node, index: index)
        }
    }

    /// Add of two values of one shape, of a feature map and a per-channel value `[C, 1, 1]` (either order), or of
    /// a value and a constant per channel or scalar (a learned ``DSGCore/BiasOp``).
    private mutating func importAdd(_ node: Onnx_NodeProto, index: Int) throws {
        let name = nodeName(node, index: index)
        if let (x, t) = try valueAndConstant(node) {
            let shift = try bias(t, for: x, node)
            return try add(BiasOp(channels: shift.shape[0]), name, [x], node, tensors: [("bias", shift)])
        }
        let a = try value(node.input[0], of: node), b = try value(node.input[1], of: node)
        let (sa, sb) = (model.shape(of: a), model.shape(of: b))
        if sa == sb {
            try add(AddOp(), name, [a, b], node)
        } else if let inputs = mapAndChannelValue(a, b) {
            try add(ChannelAddOp(), name, inputs, node)
        } else {
            throw unsupported(node, "broadcasting", "\(sa) + \(sb) (only equal shapes and a [C, 1, 1] value)")
        }
    }

    /// The value and the constant of a two-input node that has one of each (either order), else nil.
    private func valueAndConstant(_ node: Onnx_NodeProto) throws -> (ValueID, Onnx_TensorProto)? {
        for (v, k) in [(node.input[0], node.input[1]), (node.input[1], node.input[0])] {
            if let t = constants[k], values[v] != nil { return (try value(v, of: node), t) }
        }
        return nil
    }

    /// `[map, per-channel value]` when one of `a` and `b` is `[C, H, W]` and the other `[C, 1, 1]` (either
    /// order), the input order of the channel-broadcasting operators; else nil.
    private func mapAndChannelValue(_ a: ValueID, _ b: ValueID) -> [ValueID]? {
        let (sa, sb) = (model.shape(of: a), model.shape(of: b))
        if sa.rank == 3, sb == [sa[0], 1, 1] { return [a, b] }
        if sb.rank == 3, sa == [sb[0], 1, 1] { return [b, a] }
        return nil
    }

    /// A value minus a constant: a bias of the negated constant (an exported input normalisation `x - mean`).
    private mutating func importSub(_ node: Onnx_NodeProto, index: Int) throws {
        guard let t = constants[node.input[1]], values[node.input[0]] != nil else {
            throw unsupported(node, "inputs", "\(node.input) (only a value minus a constant)")
        }
        let x = try value(node.input[0], of: node), shift = try bias(t, for: x, node)
        let negated = Tensor(shape: shift.shape, scalars: shift.scalars.map { -$0 })
        try add(BiasOp(channels: shift.shape[0]), nodeName(node, index: index), [x], node, tensors: [("bias", negated)])
    }

    /// A constant added to `x` as one value per channel: a scalar, or `[C]` on a feature vector, or `[C, 1, 1]`
    /// on a feature map (each with or without a leading 1 for the batch).
    private func bias(_ t: Onnx_TensorProto, for x: ValueID, _ node: Onnx_NodeProto) throws -> Tensor {
        let s = model.shape(of: x)
        guard s.rank == 1 || s.rank == 3 else {
            throw unsupported(node, "input shape", "\(s) (a constant is added to a feature map or vector)")
        }
        return try Self.bias(t, channels: s[0], image: s.rank == 3, node)
    }

    /// The one reading of a constant as one value per channel (a bias): a scalar, or `[C]` (with or without a
    /// leading 1) for a vector, `[C, 1, 1]` (likewise) for a map; any other shape is refused.
    private static func bias(_ t: Onnx_TensorProto, channels: Int, image: Bool, _ node: Onnx_NodeProto) throws
        -> Tensor
    {
        let values = try t.floats(), c = Int64(channels)
        if values.count == 1, t.dims.count <= (image ? 4 : 2) {
            return Tensor(shape: [channels], scalars: Array(repeating: values[0], count: channels))
        }
        let perChannel: [[Int64]] = image ? [[c, 1, 1], [1, c, 1, 1]] : [[c], [1, c]]
        guard perChannel.contains(t.dims) else {
            throw ONNXError.unsupportedAttribute(
                node: node.label, op: node.opType, attribute: "constant operand",
                value: "\(t.dims) for \(channels) \(image ? "channels" : "features") (only a scalar or one value each)")
        }
        return Tensor(shape: [channels], scalars: values)
    }

    /// Mul of two values of one shape, of a feature map by a per-channel gate `[C, 1, 1]` (squeeze-excite;
    /// either order), or of a value by a scalar constant.
    private mutating func importMul(_ node: Onnx_NodeProto, index: Int) throws {
        let name = nodeName(node, index: index)
        if let (x, t) = try valueAndConstant(node) {
            let factor = try t.floats()
            guard factor.count == 1, t.dims.count <= model.shape(of: x).rank + 1 else {
                throw unsupported(node, "constant operand", "\(t.dims) (only a scalar)")
            }
            return try add(ScaleOp(factor[0]), name, [x], node)
        }
        let a = try value(node.input[0], of: node), b = try value(node.input[1], of: node)
        let (sa, sb) = (model.shape(of: a), model.shape(of: b))
        if sa == sb {
            try add(MultiplyOp(), name, [a, b], node)
        } else if let inputs = mapAndChannelValue(a, b) {
            try add(ChannelMultiplyOp(), name, inputs, node)
        } else {
            throw unsupported(node, "broadcasting", "\(sa) × \(sb) (only equal shapes and a [C, 1, 1] gate)")
        }
    }

    private mutating func importPool(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        guard s.rank == 3 else { throw unsupported(node, "input shape", "\(s) (only 2-D images)") }
        guard node.output.dropFirst().allSatisfy(\.isEmpty) else { throw unsupported(node, "Indices output", "used") }
        guard try node.int("ceil_mode", default: 0) == 0 else { throw unsupported(node, "ceil_mode", "1") }
        guard try node.int("storage_order", default: 0) == 0 else { throw unsupported(node, "storage_order", "1") }
        let kernel = try node.ints("kernel_shape", default: [])
        guard kernel.count == 2 else { throw unsupported(node, "kernel_shape", "\(kernel) (only 2-D)") }
        let geometry = try window(node, input: s, kernel: (kernel[0], kernel[1]), outChannels: s[0], groups: s[0])
        if node.opType == "MaxPool" {
            // A dilated window may lie wholly in the padding, which the pooling kernel cannot represent.
            guard geometry.dilationH == 1, geometry.dilationW == 1 else {
                throw unsupported(node, "dilations", "\([geometry.dilationH, geometry.dilationW]) (only 1)")
            }
            try add(MaxPool2dOp(window: geometry), nodeName(node, index: index), [x], node)
        } else {
            // AvgPool2dOp counts padding in the divisor (PyTorch's default); ONNX's default does not.
            let padded = geometry.padH > 0 || geometry.padW > 0
            let includePad = try node.int("count_include_pad", default: 0)
            guard !padded || includePad == 1 else {
                throw unsupported(node, "count_include_pad", "0 with padding")
            }
            try add(AvgPool2dOp(window: geometry), nodeName(node, index: index), [x], node)
        }
    }

    /// Constant padding of an image's planes. Pads come from the `pads` attribute (before opset 11) or input,
    /// `[begin per axis..., end per axis...]` over all four axes or those `axes` names (opset 18); the batch and
    /// channels must stay unpadded, and negative pads (cropping) are refused.
    private mutating func importPad(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        guard s.rank == 3 else { throw unsupported(node, "input shape", "\(s) (only 2-D images)") }
        let mode = try node.string("mode", default: "constant")
        guard mode == "constant" else { throw unsupported(node, "mode", "\(mode) (only constant)") }
        // From opset 11 pads and value are inputs; an attribute left over would otherwise be ignored.
        if opset >= 11, let old = ["pads", "value"].first(where: { node.attribute($0) != nil }) {
            throw unsupported(node, old, "an attribute from opset 11 on")
        }
        let given =
            try optionalInput(node, 1).map { try constant($0, of: node).integers() } ?? node.ints("pads", default: [])
        var fill: Float = try node.float("value", default: 0)
        if let v = optionalInput(node, 2) {
            let values = try constant(v, of: node).floats()
            guard values.count == 1 else { throw unsupported(node, "constant_value", "\(values)") }
            fill = values[0]
        }
        let axes = try optionalInput(node, 3).map { try constant($0, of: node).integers() } ?? [0, 1, 2, 3]
        let normalized = axes.compactMap { Self.normalized($0, rank: 4) }
        guard normalized.count == axes.count, Set(normalized).count == axes.count, given.count == 2 * axes.count else {
            throw unsupported(node, "pads", "\(given) over axes \(axes)")
        }
        var pads = [Int](repeating: 0, count: 8)  // begin and end of N, C, H, W
        for (k, a) in normalized.enumerated() { (pads[a], pads[a + 4]) = (given[k], given[k + axes.count]) }
        guard pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else {
            throw unsupported(node, "pads", "\(given) (only the height and width are padded)")
        }
        guard pads.allSatisfy({ (0...Self.maximumAttribute).contains($0) }) else {
            throw unsupported(node, "pads", "\(given) (negative or too large)")
        }
        let op = PadOp(top: pads[2], bottom: pads[6], left: pads[3], right: pads[7], value: fill)
        try add(op, nodeName(node, index: index), [x], node)
    }

    /// MatMul of a flat sample `[K]` by a constant `[K, N]`: a linear layer. When the product's only reader is a
    /// later Add of a constant bias (an exported `nn.Linear`: MatMul, or Transpose and MatMul, then Add), that Add
    /// becomes the layer's bias.
    private mutating func importMatMul(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        guard s.rank == 1 else { throw unsupported(node, "input shape", "\(s) (a flat sample)") }
        let b = try constant(node.input[1], of: node), w = try b.tensor()
        guard w.shape.rank == 2, w.shape[0] == s[0] else {
            throw GraphError.shapeMismatch(
                node: node.label, op: "MatMul", inputs: [s, w.shape], expected: "B of \(s[0]) rows")
        }
        var tensors = [("weight", Self.transposed(w))]  // stored [K, N]; the layer keeps [N, K]
        let outFeatures = w.shape[1]
        if let readers = readers[node.output[0]], readers.count == 1, readers[0] > index,
            !graph.output.contains(where: { $0.name == node.output[0] })
        {
            let next = graph.node[readers[0]]
            let other = next.input.first { $0 != node.output[0] }
            if next.opType == "Add", next.domain.isEmpty, next.attribute.isEmpty, next.input.count == 2,
                next.output.count == 1, let other, let c = constants[other],
                let bias = try? Self.bias(c, channels: outFeatures, image: false, next)
            {
                tensors.append(("bias", bias))
                fused.insert(readers[0])
                let op = LinearOp(inFeatures: s[0], outFeatures: outFeatures, bias: true)
                try add(op, nodeName(node, index: index, weight: b.name), [x], node, tensors: tensors)
                values[next.output[0]] = values[node.output[0]]
                return
            }
        }
        let op = LinearOp(inFeatures: s[0], outFeatures: outFeatures, bias: false)
        try add(op, nodeName(node, index: index, weight: b.name), [x], node, tensors: tensors)
    }

    /// Transpose of a value: only the identity (constants are folded).
    private mutating func importTranspose(_ node: Onnx_NodeProto) throws {
        let perm = node.attribute("perm").map { $0.ints.map { Int($0) } }
        let rank = model.shape(of: try value(node.input[0], of: node)).rank + 1
        guard perm == Array(0..<rank) else { throw unsupported(node, "perm", "\(perm ?? []) on a value") }
        try passThrough(node)
    }

    private mutating func importFlatten(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node)
        guard try node.int("axis", default: 1) == 1 else {
            throw unsupported(node, "axis", "\(try node.int("axis", default: 1))")
        }
        try add(ReshapeOp([model.shape(of: x).elementCount]), nodeName(node, index: index), [x], node)
    }

    /// Reshape to a constant shape whose first entry is the batch (1, -1 or 0) and the rest the sample's.
    private mutating func importReshape(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        let target = try constant(node.input[1], of: node).integers()
        guard try node.int("allowzero", default: 0) == 0 || !target.contains(0) else {
            throw unsupported(node, "allowzero", "1 with a zero in the shape")
        }
        let keepsBatch = [0, Self.batchMarker] + (fixedBatch == 1 ? [1] : []) + [-1]
        guard let batch = target.first, keepsBatch.contains(batch), target.filter({ $0 == -1 }).count <= 1 else {
            throw unsupported(node, "shape", "\(target) (the first entry must keep the batch)")
        }
        var sample = Array(target.dropFirst())
        guard sample.allSatisfy({ $0 >= -1 }) else { throw unsupported(node, "shape", "\(target)") }
        for (i, d) in sample.enumerated() where d == 0 {
            guard i < s.rank else { throw unsupported(node, "shape", "\(target)") }
            sample[i] = s[i]
        }
        guard let known = Shape(sample.filter { $0 != -1 }).checkedElementCount else {
            throw unsupported(node, "shape", "\(target)")
        }
        if let free = sample.firstIndex(of: -1) {
            guard sample.filter({ $0 == -1 }).count == 1, known > 0, s.elementCount % known == 0 else {
                throw unsupported(node, "shape", "\(target)")
            }
            sample[free] = s.elementCount / known
        }
        guard sample.allSatisfy({ $0 > 0 }) else { throw unsupported(node, "shape", "\(target)") }
        try add(ReshapeOp(Shape(sample)), nodeName(node, index: index), [x], node)
    }

    /// Gemm `alpha · A · B' + beta · C` with A the flat sample and B, C initializers: a linear layer.
    private mutating func importGemm(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        guard try node.int("transA", default: 0) == 0 else { throw unsupported(node, "transA", "1") }
        guard s.rank == 1 else { throw unsupported(node, "input shape", "\(s) (a flat sample)") }
        let b = try constant(node.input[1], of: node)
        var w = try b.tensor()
        guard w.shape.rank == 2 else { throw unsupported(node, "B shape", "\(w.shape)") }
        if try node.int("transB", default: 0) == 0 { w = Self.transposed(w) }  // stored [K, N]; the layer keeps [N, K]
        let (outFeatures, inFeatures) = (w.shape[0], w.shape[1])
        guard inFeatures == s[0] else {
            throw GraphError.shapeMismatch(
                node: node.label, op: "Gemm", inputs: [s, w.shape], expected: "B of \(s[0]) inputs")
        }
        let alpha = try node.float("alpha", default: 1), beta = try node.float("beta", default: 1)
        if alpha != 1 { w = Tensor(shape: w.shape, scalars: w.scalars.map { $0 * alpha }) }
        var tensors = [("weight", w)]
        if let c = optionalInput(node, 2) {
            // C broadcasts to [M, N]: only a scalar or one value per output keeps it per output and sample.
            let bias = try Self.bias(try constant(c, of: node), channels: outFeatures, image: false, node)
            tensors.append(("bias", Tensor(shape: [outFeatures], scalars: bias.scalars.map { $0 * beta })))
        }
        let op = LinearOp(inFeatures: inFeatures, outFeatures: outFeatures, bias: tensors.count == 2)
        try add(op, nodeName(node, index: index, weight: b.name), [x], node, tensors: tensors)
    }

    private static func transposed(_ t: Tensor) -> Tensor {
        let (rows, columns) = (t.shape[0], t.shape[1]), x = t.scalars
        return Tensor(
            shape: [columns, rows], scalars: (0..<(rows * columns)).map { x[($0 % rows) * columns + $0 / rows] })
    }

    /// The batch size in a shape computed from the graph (`Shape` of a value, then `Gather`, `Unsqueeze`,
    /// `Concat`): unknown until an executor runs, so it is carried as this marker, which a `Reshape` reads as
    /// "keep the batch" (PyTorch's `x.view(x.size(0), -1)` exports this chain).
    static let batchMarker = Int(Int64.min)

    /// The axes of Squeeze, Unsqueeze or ReduceMean: an attribute (older opsets) or the second input (newer).
    private func axes(_ node: Onnx_NodeProto) throws -> [Int]? {
        if let name = optionalInput(node, 1) { return try constant(name, of: node).integers() }
        return node.attribute("axes").map { $0.ints.map { Int($0) } }
    }

    /// `axis` of an input of `rank` dimensions (batch included) counted from 0, or nil when outside.
    static func normalized(_ axis: Int, rank: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return (0..<rank).contains(a) ? a : nil
    }

    /// The mean over the spatial axes of an image: global average pooling (keeping the axes or not).
    private mutating func importReduceMean(_ node: Onnx_NodeProto, index: Int) throws {
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        let given = try axes(node) ?? []
        let rank = s.rank + 1
        guard s.rank == 3, Set(given.compactMap { Self.normalized($0, rank: rank) }) == [2, 3], given.count == 2 else {
            throw unsupported(node, "axes", "\(given) on \(s) (only the spatial axes of an image)")
        }
        let name = nodeName(node, index: index)
        if try node.int("keepdims", default: 1) != 0 {
            try add(GlobalAvgPoolOp(), name, [x], node)
        } else {
            let pooled = try model.add(GlobalAvgPoolOp(), name: name, inputs: [x], using: &random)
            try add(ReshapeOp([s[0]]), nodeName(node, index: index), [pooled], node)
        }
    }

    /// Concat of values along the channels.
    private mutating func importConcat(_ node: Onnx_NodeProto, index: Int) throws {
        let inputs = try node.input.map { try value($0, of: node) }
        let rank = model.shape(of: inputs[0]).rank + 1
        try ONNXConstantFolding.checkConcatAxis(node, opset: opset)
        guard Self.normalized(try node.int("axis", default: 1), rank: rank) == 1 else {
            throw unsupported(node, "axis", "\(try node.int("axis", default: 1)) (only the channels)")
        }
        try add(ConcatOp(), nodeName(node, index: index), inputs, node)
    }

    /// Squeeze or Unsqueeze of a value: a reshape of each sample; the batch axis stays.
    private mutating func importSqueeze(_ node: Onnx_NodeProto, index: Int) throws {
        let squeeze = node.opType == "Squeeze"
        let x = try value(node.input[0], of: node), s = model.shape(of: x)
        var dims = [1] + s.dimensions  // the batch as a placeholder of 1
        // Without axes ONNX removes every axis of size 1, the batch too when it is 1: refused, as it depends on
        // the batch.
        guard let given = try axes(node) else { throw unsupported(node, "axes", "none") }
        let rank = squeeze ? dims.count : dims.count + given.count
        let axes = given.compactMap { Self.normalized($0, rank: rank) }.sorted()
        guard axes.count == given.count, Set(axes).count == axes.count, !axes.contains(0) else {
            throw unsupported(node, "axes", "\(given) (the batch axis stays)")
        }
        if squeeze {
            guard axes.allSatisfy({ dims[$0] == 1 }) else { throw unsupported(node, "axes", "\(given) on \(s)") }
            for a in axes.reversed() { dims.remove(at: a) }
        } else {
            for a in axes { dims.insert(1, at: a) }
        }
        try add(ReshapeOp(Shape(Array(dims.dropFirst()))), nodeName(node, index: index), [x], node)
    }

    /// The shape of a value, as a constant whose batch entry is ``batchMarker``.
    private mutating func importShape(_ node: Onnx_NodeProto) throws {
        let s = model.shape(of: try value(node.input[0], of: node))
        let dims = try ONNXConstantFolding.shape([Self.batchMarker] + s.dimensions, node)
        constants[node.output[0]] = Constant(dims: [dims.count], values: .integers(dims)).proto(named: node.output[0])
    }

    /// A `Constant` node's value becomes a constant the next nodes can read as a weight, shape or bound.
    private mutating func importConstant(_ node: Onnx_NodeProto) throws {
        var t: Onnx_TensorProto
        if let a = node.attribute("value") {
            t = a.t
        } else if let a = node.attribute("value_float") {
            t = Onnx_TensorProto()
            (t.dataType, t.floatData) = (ONNXDataType.float, [a.f])
        } else if let a = node.attribute("value_floats") {
            t = Onnx_TensorProto()
            (t.dataType, t.dims, t.floatData) = (ONNXDataType.float, [Int64(a.floats.count)], a.floats)
        } else if let a = node.attribute("value_int") {
            t = Onnx_TensorProto()
            (t.dataType, t.int64Data) = (ONNXDataType.int64, [a.i])
        } else if let a = node.attribute("value_ints") {
            t = Onnx_TensorProto()
            (t.dataType, t.dims, t.int64Data) = (ONNXDataType.int64, [Int64(a.ints.count)], a.ints)
        } else {
            throw unsupported(node, "value", node.attribute.first?.name ?? "none")
        }
        t.name = node.output[0]
        constants[node.output[0]] = t
    }
}

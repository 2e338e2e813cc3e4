/// Why an ONNX file cannot become a ``DSGCore/Model``. Every case names what is wrong: the file, the node and
/// its operator, the tensor or the attribute.
public enum ONNXError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read from disk; `reason` is the system's message.
    case unreadable(file: String, reason: String)
    /// The bytes are not a protobuf `ModelProto` (truncated, or another kind of file).
    case notONNX(file: String, reason: String)
    /// An IR version or operator-set version outside what the importer knows.
    case unsupportedVersion(file: String, what: String)
    /// The graph has no BatchNorm node: it was exported with BatchNorm folded into the convolutions.
    case foldedBatchNorm(file: String)
    /// The graph takes `count` inputs (besides its initializers), not one image input.
    case inputCount(file: String, count: Int)
    /// The graph has `count` outputs, not one.
    case outputCount(file: String, count: Int)
    /// The graph input's type or shape cannot be used (`[N, C, H, W]` Float32 with known C, H and W).
    case inputShape(file: String, input: String, reason: String)
    /// An operator the importer does not implement, or one from another domain.
    case unsupportedOperator(node: String, op: String)
    /// An attribute value (or input) of a supported operator that the importer does not implement.
    case unsupportedAttribute(node: String, op: String, attribute: String, value: String)
    /// A node reads a weight or constant input that no initializer or `Constant` node provides.
    case missingInitializer(node: String, op: String, tensor: String)
    /// A node reads a value that no earlier node, input or initializer produces.
    case unknownValue(node: String, op: String, value: String)
    /// A tensor stored outside the file (external data), which the importer does not read.
    case externalData(tensor: String)
    /// A tensor of another element type than the one needed (ONNX's `TensorProto.DataType` number).
    case dataType(tensor: String, expected: String, found: Int)
    /// A tensor with a negative dimension, or more elements than an `Int` counts.
    case dimensions(tensor: String, dimensions: [Int])
    /// A tensor whose stored values do not fill its dimensions.
    case tensorSize(tensor: String, expected: Int, found: Int)

    /// One line naming the file, node, tensor or attribute.
    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): cannot be read (\(reason))"
        case .notONNX(let file, let reason): return "\(file): not an ONNX model (\(reason))"
        case .unsupportedVersion(let file, let what): return "\(file): \(what) is not supported"
        case .foldedBatchNorm(let file):
            return "\(file) has no BatchNormalization node: DSG synthesises samples from BatchNorm statistics, so it "
                + "needs them. Export with BatchNorm kept: torch.onnx.export(..., "
                + "training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False) on the model in eval mode"
        case .inputCount(let file, let count):
            return "\(file): the graph takes \(count) inputs; swift-dsg imports models with one image input"
        case .outputCount(let file, let count):
            return "\(file): the graph has \(count) outputs; swift-dsg imports models with one output (the logits)"
        case .inputShape(let file, let input, let reason): return "\(file): input '\(input)': \(reason)"
        case .unsupportedOperator(let node, let op): return "node '\(node)': operator \(op) is not supported"
        case .unsupportedAttribute(let node, let op, let attribute, let value):
            return "\(op) node '\(node)': \(attribute) = \(value) is not supported"
        case .missingInitializer(let node, let op, let tensor):
            return "\(op) node '\(node)': input '\(tensor)' must be an initializer or a Constant, and is neither"
        case .unknownValue(let node, let op, let value):
            return "\(op) node '\(node)' reads '\(value)', which no earlier node, input or initializer produces"
        case .externalData(let tensor):
            return "tensor '\(tensor)' is stored in an external file; save the model with its data inside"
        case .dataType(let tensor, let expected, let found):
            return "tensor '\(tensor)' has ONNX data type \(found), expected \(expected)"
        case .dimensions(let tensor, let dimensions):
            return "tensor '\(tensor)' has impossible dimensions \(dimensions)"
        case .tensorSize(let tensor, let expected, let found):
            return "tensor '\(tensor)' holds \(found) values for \(expected) elements"
        }
    }
}

/// Errors a user's model, input or file can cause while building or running a graph. Each names the node.
public enum GraphError: Error, Equatable, CustomStringConvertible {
    /// The inputs of a node do not have the shapes its operator needs.
    case shapeMismatch(node: String, op: String, inputs: [Shape], expected: String)
    /// A convolution or pooling window that cannot be applied (zero stride, kernel larger than the padded input...).
    case invalidGeometry(node: String, op: String, input: Shape, reason: String)
    /// A node refers to a value that does not exist (yet).
    case unknownValue(node: String, value: Int)
    /// A node or tensor name is used twice.
    case duplicateName(String)
    /// No parameter or buffer has this name.
    case unknownTensor(String)
    /// A tensor given for a parameter, buffer or graph input has the wrong shape.
    case tensorShape(name: String, expected: Shape, got: Shape)
    /// The wrong number of graph inputs was passed.
    case inputCount(expected: Int, got: Int)
    /// A range of samples that does not lie inside the tensor, or does not hold one batch.
    case sampleRange(input: String, range: Range<Int>, samples: Int, batchSize: Int)
    /// A value became NaN or infinite.
    case nonFinite(node: String, op: String, shape: Shape)
    /// A class label outside `0..<classes`.
    case labelOutOfRange(node: String, label: Float, classes: Int)
    /// An executor needs a batch of at least one sample.
    case invalidBatchSize(Int)
    /// An operator the package does not implement.
    case unsupportedOperator(String)

    /// The node (or name) and what is wrong, with the shapes or values involved.
    public var description: String {
        switch self {
        case .shapeMismatch(let node, let op, let inputs, let expected):
            return
                "\(op) node '\(node)': input shapes \(inputs.map(\.description).joined(separator: ", ")) do not fit; "
                + "expected \(expected)"
        case .invalidGeometry(let node, let op, let input, let reason):
            return "\(op) node '\(node)' on input \(input): \(reason)"
        case .unknownValue(let node, let value):
            return "node '\(node)' reads value #\(value), which no earlier node or input produces"
        case .duplicateName(let name):
            return "the name '\(name)' is used twice"
        case .unknownTensor(let name):
            return "the model has no parameter or buffer named '\(name)'"
        case .tensorShape(let name, let expected, let got):
            return "'\(name)' must have shape \(expected), got \(got)"
        case .inputCount(let expected, let got):
            return "the model takes \(expected) input(s), got \(got)"
        case .sampleRange(let input, let range, let samples, let batchSize):
            return
                "input '\(input)': samples \(range.lowerBound)..<\(range.upperBound) of \(samples) "
                + "do not make one batch of \(batchSize)"
        case .nonFinite(let node, let op, let shape):
            return "\(op) node '\(node)' produced NaN or infinity (output shape \(shape))"
        case .labelOutOfRange(let node, let label, let classes):
            return "node '\(node)': label \(label) is not an integer in 0..<\(classes)"
        case .invalidBatchSize(let size):
            return "the batch size must be at least 1, got \(size)"
        case .unsupportedOperator(let name):
            return "unsupported operator '\(name)'"
        }
    }
}

import DSGCore
import Foundation

/// Why a file cannot be read as a model.
public enum ModelFileError: Error, Equatable, CustomStringConvertible {
    /// The file's extension names a format this package does not read.
    case unsupportedFormat(file: String)
    /// The file's metadata names an architecture this package cannot build from a weights file.
    case unsupportedArchitecture(file: String, architecture: String)
    /// The file holds a quantized model, which needs the floating-point architecture it was made from.
    case quantizedModel(file: String)

    /// The file's name and what it holds instead, with how to load it where there is a way.
    public var description: String {
        switch self {
        case .unsupportedFormat(let file):
            return "\(file): not a model file swift-dsg reads (.onnx, or .safetensors of a built-in architecture)"
        case .unsupportedArchitecture(let file, let architecture):
            return
                "\(file): architecture '\(architecture)'; swift-dsg builds 'resnet20' and 'mobilenetv2' from a weights file"
        case .quantizedModel(let file):
            return
                "\(file): a quantized model; load it with QuantizedModel.load(from:architecture:) and its float model"
        }
    }
}

extension Model {
    /// The metadata keys of a model file: the architecture's name and the per-sample input shape ("1x28x28").
    public static let architectureKey = "model", inputShapeKey = "input"

    /// The metadata keys of a MobileNetV2 weights file: its width multiplier ("0.5") and strides ("smallImages").
    public static let widthKey = "width", stridesKey = "strides"

    /// The metadata from which ``load(contentsOf:)`` rebuilds a MobileNetV2 (with ``inputShapeKey`` added).
    public static func mobileNetV2Metadata(width: Double, strides: MobileNetV2.Strides) -> [String: String] {
        [architectureKey: "mobilenetv2", widthKey: String(width), stridesKey: strides.rawValue]
    }

    /// Reads a model from a file: the one place where a file becomes a ``Model``.
    ///
    /// - `.onnx`: any graph of the operators ``ONNXImport`` supports, with BatchNorm kept (Docs/ONNX.md).
    /// - `.safetensors`: a built-in architecture with its tensor names, as `dsg train` writes them (its
    ///   checkpoints too), and the embedded default model: ResNet-20 (PyTorch's names; the architecture of files
    ///   without a `model` entry) or MobileNetV2 (with its `width` and `strides` entries). The number of input
    ///   channels and of classes are read from the first convolution's and the classifier's weights, the input's
    ///   side from the `input` metadata (28, Fashion-MNIST's, in files that predate it).
    public static func load(contentsOf url: URL) throws -> Model {
        let file = url.lastPathComponent
        switch url.pathExtension.lowercased() {
        case "onnx": return try ONNXImport.model(contentsOf: url)
        case "safetensors": break
        default: throw ModelFileError.unsupportedFormat(file: file)
        }
        let contents = try Safetensors.read(url)
        guard contents.metadata["ptq"] == nil else { throw ModelFileError.quantizedModel(file: file) }
        let model: Model
        switch contents.metadata[architectureKey] ?? "resnet20" {
        case "resnet20":
            let (input, classes) = try shapes(contents, file: file, firstConv: "conv1.weight", classifier: "fc.weight")
            model = try ResNet.resnet20(input: input, classes: classes)
        case "mobilenetv2":
            let (input, classes) = try shapes(
                contents, file: file, firstConv: "stem.conv.weight", classifier: "classifier.weight")
            let widthText = contents.metadata[widthKey] ?? "1"
            guard let width = Double(widthText), MobileNetV2.isValidWidth(width) else {
                throw SafetensorsError.badEntry(
                    file: file, tensor: "__metadata__", reason: "width '\(widthText)' is not a multiplier in (0, 4]")
            }
            let stridesText = contents.metadata[stridesKey] ?? MobileNetV2.Strides.imageNet.rawValue
            guard let strides = MobileNetV2.Strides(rawValue: stridesText) else {
                throw SafetensorsError.badEntry(
                    file: file, tensor: "__metadata__",
                    reason: "strides '\(stridesText)' is not one of \(MobileNetV2.Strides.allCases.map(\.rawValue))")
            }
            model = try MobileNetV2.build(input: input, classes: classes, width: width, strides: strides)
        case let architecture:
            throw ModelFileError.unsupportedArchitecture(file: file, architecture: architecture)
        }
        // A `dsg train` checkpoint also holds the optimizer's momentum buffers.
        try model.load(contents, file: file, ignoringPrefixes: ["optimizer."])
        return model
    }

    /// The per-sample input shape and the number of classes of a weights file: the channels from its first
    /// convolution, the side from the `input` metadata (28 where it is missing), the classes from its classifier.
    private static func shapes(_ contents: Safetensors.Contents, file: String, firstConv: String, classifier: String)
        throws -> (input: Shape, classes: Int)
    {
        guard let conv = contents.tensor(named: firstConv), conv.shape.rank == 4 else {
            throw SafetensorsError.missingTensor(file: file, tensor: firstConv)
        }
        guard let linear = contents.tensor(named: classifier), linear.shape.rank == 2 else {
            throw SafetensorsError.missingTensor(file: file, tensor: classifier)
        }
        guard let text = contents.metadata[inputShapeKey] else { return ([conv.shape[1], 28, 28], linear.shape[0]) }
        let sides = text.split(separator: "x").compactMap { Int($0) }
        guard sides.count == 3, sides.allSatisfy({ $0 > 0 }), sides[0] == conv.shape[1] else {
            throw SafetensorsError.badEntry(
                file: file, tensor: "__metadata__",
                reason: "input shape '\(text)' is not C x H x W with C = \(conv.shape[1])")
        }
        return (Shape(sides), linear.shape[0])
    }
}

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
            return "\(file): architecture '\(architecture)'; swift-dsg builds 'resnet20' from a weights file"
        case .quantizedModel(let file):
            return
                "\(file): a quantized model; load it with QuantizedModel.load(from:architecture:) and its float model"
        }
    }
}

extension Model {
    /// The metadata keys of a model file: the architecture's name and the per-sample input shape ("1x28x28").
    public static let architectureKey = "model", inputShapeKey = "input"

    /// Reads a model from a file: the one place where a file becomes a ``Model``.
    ///
    /// - `.onnx`: any graph of the operators ``ONNXImport`` supports, with BatchNorm kept (Docs/ONNX.md).
    /// - `.safetensors`: the ResNet-20 architecture with PyTorch's tensor names: what `dsg train` writes (its
    ///   checkpoints too), and the embedded default model. The number of input channels and of classes are
    ///   read from the first convolution's and the classifier's weights, the input's side from the `input`
    ///   metadata (28, Fashion-MNIST's, in files that predate it).
    public static func load(contentsOf url: URL) throws -> Model {
        let file = url.lastPathComponent
        switch url.pathExtension.lowercased() {
        case "onnx": return try ONNXImport.model(contentsOf: url)
        case "safetensors": break
        default: throw ModelFileError.unsupportedFormat(file: file)
        }
        let contents = try Safetensors.read(url)
        guard contents.metadata["ptq"] == nil else { throw ModelFileError.quantizedModel(file: file) }
        let architecture = contents.metadata[architectureKey] ?? "resnet20"
        guard architecture == "resnet20" else {
            throw ModelFileError.unsupportedArchitecture(file: file, architecture: architecture)
        }
        guard let conv = contents.tensor(named: "conv1.weight"), conv.shape.rank == 4 else {
            throw SafetensorsError.missingTensor(file: file, tensor: "conv1.weight")
        }
        guard let classifier = contents.tensor(named: "fc.weight"), classifier.shape.rank == 2 else {
            throw SafetensorsError.missingTensor(file: file, tensor: "fc.weight")
        }
        var input: Shape = [conv.shape[1], 28, 28]
        if let text = contents.metadata[inputShapeKey] {
            let sides = text.split(separator: "x").compactMap { Int($0) }
            guard sides.count == 3, sides.allSatisfy({ $0 > 0 }), sides[0] == conv.shape[1] else {
                throw SafetensorsError.badEntry(
                    file: file, tensor: "__metadata__",
                    reason: "input shape '\(text)' is not C x H x W with C = \(conv.shape[1])")
            }
            input = Shape(sides)
        }
        let model = try ResNet.resnet20(input: input, classes: classifier.shape[0])
        // A `dsg train` checkpoint also holds the optimizer's momentum buffers.
        try model.load(contents, file: file, ignoringPrefixes: ["optimizer."])
        return model
    }
}

import ArgumentParser
import DSG
import Foundation

/// The `--model` option: any model file `Model.load(contentsOf:)` reads, or the embedded default model.
package struct ModelOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            A CNN with BatchNorm layers: an ONNX file (.onnx, exported with BatchNorm kept), or the weights \
            `dsg train` writes (.safetensors, ResNet-20 or MobileNetV2; its checkpoints also work). Default: the \
            embedded model.
            """,
            valueName: "path"))
    var model: String?

    /// What the reports call the model.
    var name: String { model ?? "embedded model" }

    package init() {}

    /// The model in `--model`, or the embedded default model.
    package func load() throws -> Model {
        guard let model else { return try DSG.defaultModel() }
        return try Model.load(contentsOf: URL(fileURLWithPath: model))
    }

    /// The model, for a command that measures it on Fashion-MNIST: its input must be Fashion-MNIST's.
    func loadForFashionMNIST() throws -> Model {
        let model = try load()
        let shape = model.inputs.first?.shape ?? []
        guard shape == FashionMNIST.sampleShape else { throw FashionMNISTInputError(model: name, shape: shape) }
        return model
    }
}

/// A model whose input is not Fashion-MNIST's, given to a command that evaluates on Fashion-MNIST.
struct FashionMNISTInputError: Error, CustomStringConvertible {
    let model: String, shape: Shape
    var description: String {
        "\(model) takes \(shape) images, but this command measures top-1 on Fashion-MNIST, whose images are "
            + "\(FashionMNIST.sampleShape); `dsg generate`, `dsg inspect`, `dsg export` and PTQ from samples work on any "
            + "model, and --images measures on a folder of its images"
    }
}

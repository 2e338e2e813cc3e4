import ArgumentParser
import DSG
import Foundation

/// The `--model` option of commands that work on a trained ResNet-20 for Fashion-MNIST.
struct ModelOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Trained ResNet-20 weights (safetensors; a `dsg train` checkpoint also works). \
            Default: the embedded model.
            """,
            valueName: "path"))
    var model: String?

    /// What the reports call the model.
    var name: String { model ?? "embedded model" }

    /// The model in `--model`, or the embedded default model.
    func load() throws -> Model {
        guard let model else { return try DSG.defaultModel() }
        return try Model.load(contentsOf: URL(fileURLWithPath: model))
    }
}

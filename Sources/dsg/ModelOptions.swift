import ArgumentParser
import DSG
import Foundation

/// The `--model` option of commands that work on a trained ResNet-20 for Fashion-MNIST.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Trained ResNet-20 weights (safetensors; a `dsg train` checkpoint also works). Default: the embedded model.",
        valueName: "path"))
    var model: String?

    /// What the reports call the model.
    var name: String { model ?? "embedded model" }

    /// The ResNet-20 with the weights from `--model`, or the embedded default model.
    func load() throws -> Model {
        guard let model else { return try DSG.defaultModel() }
        let network = try ResNet.resnet20(input: [1, 28, 28], classes: FashionMNIST.classes)
        let url = URL(fileURLWithPath: model)
        try network.load(try Safetensors.read(url), file: url.lastPathComponent, ignoringPrefixes: ["optimizer."])
        return network
    }
}

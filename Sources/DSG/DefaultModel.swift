import DSGCore
import Foundation

extension DSG {
    /// The file name of the embedded default model's weights inside the `DSG` module's resources.
    static let defaultModelResource = "resnet20-fashion-mnist"

    /// The embedded default model: a ResNet-20 (input 1×28×28, 10 classes) trained on Fashion-MNIST by
    /// `dsg train` with seed 0. Its inputs are images normalised with `FashionMNIST.mean` and
    /// `FashionMNIST.standardDeviation`; its accuracy and how it was trained are in `Docs/RESULTS.md`.
    ///
    /// Every call returns a new model with its own weights, so it can be changed freely.
    public static func defaultModel() throws -> Model {
        try Model.load(contentsOf: defaultModelURL)
    }

    /// Where the embedded default model's safetensors file is.
    public static var defaultModelURL: URL {
        Bundle.module.url(forResource: defaultModelResource, withExtension: "safetensors")!
    }
}

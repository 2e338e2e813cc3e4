import ArgumentParser
import DSG
import Foundation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure a model's top-1 accuracy on the Fashion-MNIST test set.")

    @OptionGroup var dataOptions: DataOptions

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Option(
        help: ArgumentHelp(
            "Also write the images, labels and logits evaluated (safetensors), for checking another runtime.",
            valueName: "path"))
    var saveLogits: String?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1.") }
    }

    func run() throws {
        try reportingErrors {
            var test = try FashionMNIST.load(.test, from: dataOptions.directory)
            if let limit { test = test.prefix(limit) }
            let network = try modelOptions.loadForFashionMNIST()
            let line = ProgressLine()
            let logits = try Evaluation.logits(of: network, on: test.images) { done in
                line.update("evaluating \(done)/\(test.count)")
            }
            line.finish()
            let accuracy = Evaluation.accuracy(of: logits, labels: test.labels)
            if let saveLogits { try Self.writeLogits(logits, of: test, model: modelOptions.name, to: saveLogits) }
            say(
                String(
                    format: "top-1 accuracy %.2f%% on %d Fashion-MNIST test images (%@)", 100 * accuracy, test.count,
                    modelOptions.name))
        }
    }

    /// Writes the images, labels and a model's logits on them, for a runtime's check
    /// (Tests/Interop/onnxruntime_check.py).
    static func writeLogits(_ logits: Tensor, of test: LabeledImages, model: String, to path: String) throws {
        let labels = Tensor(shape: [test.count], scalars: test.labels.map(Float.init))
        let contents = Safetensors.Contents(
            tensors: [("images", test.images), ("labels", labels), ("logits", logits)], metadata: ["model": model])
        try Safetensors.write(contents, to: URL(fileURLWithPath: path))
    }
}

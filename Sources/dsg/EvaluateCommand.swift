import ArgumentParser
import DSG
import Foundation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure a model's accuracy on the Fashion-MNIST test set or a folder of labelled images.")

    @OptionGroup var dataOptions: DataOptions

    @OptionGroup(title: "Labelled images") var imageOptions: ImageFolderOptions

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
            let network = try modelOptions.load()
            let (test, what) = try Self.testSet(
                for: network, modelOptions: modelOptions, data: dataOptions, images: imageOptions)
            let set = limit.map { test.prefix($0) } ?? test
            let line = ProgressLine()
            let logits = try Evaluation.logits(of: network, on: set.images) { done in
                line.update("evaluating \(done)/\(set.count)")
            }
            line.finish()
            if let saveLogits { try Self.writeLogits(logits, of: set, model: modelOptions.name, to: saveLogits) }
            // Top-5 for many-class models (ImageNet's 1,000); on 10 classes it says little.
            let top5 =
                set.classes > 10
                ? String(format: ", top-5 %.2f%%", 100 * Evaluation.topKAccuracy(of: logits, labels: set.labels, k: 5))
                : ""
            say(
                String(
                    format: "top-1 accuracy %.2f%%%@ on %@ (%@)",
                    100 * Evaluation.accuracy(of: logits, labels: set.labels),
                    top5, limit == nil ? what : "the first \(set.count) of \(what)", modelOptions.name))
        }
    }

    /// The labelled images a model is measured on: `--images` when given, else the Fashion-MNIST test set (for
    /// models of its input), with a phrase saying which.
    static func testSet(
        for model: Model, modelOptions: ModelOptions, data: DataOptions, images: ImageFolderOptions
    ) throws -> (LabeledImages, String) {
        guard images.images != nil else {
            let shape = model.inputs.first?.shape ?? []
            guard shape == FashionMNIST.sampleShape else {
                throw FashionMNISTInputError(model: modelOptions.name, shape: shape)
            }
            let test = try FashionMNIST.load(.test, from: data.directory)
            return (test, "\(test.count) Fashion-MNIST test images")
        }
        return try images.load(for: model, name: modelOptions.model)
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

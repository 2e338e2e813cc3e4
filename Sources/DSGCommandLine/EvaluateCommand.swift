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
            let (set, what) = try Self.testSet(
                for: network, modelOptions: modelOptions, data: dataOptions, images: imageOptions, limit: limit)
            let line = ProgressLine()
            let logits = try Evaluation.logits(of: network, on: set.images) { done in
                line.update("evaluating \(done)/\(set.count)")
            }
            line.finish()
            if let saveLogits { try Self.writeLogits(logits, of: set, model: modelOptions.name, to: saveLogits) }
            say("top-1 accuracy \(Self.accuracies(logits, of: set)) on \(what) (\(modelOptions.name))")
        }
    }

    /// The labelled images a model is measured on: `--images` when given, else the Fashion-MNIST test set (for
    /// models of its input), the first `limit` of them when given, with a phrase saying which.
    static func testSet(
        for model: Model, modelOptions: ModelOptions, data: DataOptions, images: ImageFolderOptions,
        limit: Int? = nil
    ) throws -> (LabeledImages, String) {
        guard let folder = images.images else {
            let shape = model.inputs.first?.shape ?? []
            guard shape == FashionMNIST.sampleShape else {
                throw FashionMNISTInputError(model: modelOptions.name, shape: shape)
            }
            let test = try FashionMNIST.load(.test, from: data.directory)
            let set = limit.map { test.prefix($0) } ?? test
            let what = "\(test.count) Fashion-MNIST test images"
            return (set, set.count < test.count ? "the first \(set.count) of \(what)" : what)
        }
        return try images.load(folder, for: model, name: modelOptions.model, limit: limit)
    }

    /// "93.91%", with the top-5 accuracy after it for many-class models (ImageNet's 1,000; on 10 classes it says
    /// little): "90.00% (top-5 95.00%)".
    static func accuracies(_ logits: Tensor, of set: LabeledImages) -> String {
        let top1 = String(format: "%.2f%%", 100 * Evaluation.accuracy(of: logits, labels: set.labels))
        guard set.classes > 10 else { return top1 }
        return top1
            + String(format: " (top-5 %.2f%%)", 100 * Evaluation.topKAccuracy(of: logits, labels: set.labels, k: 5))
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

import ArgumentParser
import DSG
import Foundation

/// `--images` and its preprocessing: measure on a folder of labelled PNG/JPEG images instead of Fashion-MNIST.
struct ImageFolderOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Measure on this folder of labelled PNG/JPEG images instead of Fashion-MNIST: one sub-folder per class \
            index, or the label at the end of each file name (foolbox's imagenet_00_243.jpg).
            """,
            valueName: "folder"))
    var images: String?

    @Option(help: "Centred crop, as a fraction of the shorter side (0.875 for ImageNet's 224-of-256), then resize.")
    var cropFraction: Double = 1

    @Option(
        help: ArgumentHelp(
            """
            Per-channel mean of [0, 1] pixels, comma-separated, fractions allowed (0.485,0.456,0.406 for torchvision \
            ImageNet models, 127/255 for EfficientNet-Lite). Default: Fashion-MNIST's for the embedded model and \
            `dsg train` files, 0 for ONNX files.
            """,
            valueName: "values"))
    var mean: String?

    @Option(
        help: ArgumentHelp(
            "Per-channel standard deviation, as --mean (0.229,0.224,0.225; 128/255). Default: as --mean, or 1.",
            valueName: "values"))
    var std: String?

    func validate() throws {
        if images == nil && (cropFraction != 1 || mean != nil || std != nil) {
            throw ValidationError("--crop-fraction, --mean and --std describe the images of --images; give it too.")
        }
        for (name, value) in [("--mean", mean), ("--std", std)] {
            if let value, Self.numbers(value) == nil {
                throw ValidationError("\(name) takes comma-separated numbers or fractions like 127/255, not \(value).")
            }
        }
        try validated { try preprocessing(model: nil).validate(channels: nil) }
    }

    /// The preprocessing the options describe for `model` (a file name, or nil for the embedded model).
    func preprocessing(model: String?) -> ImagePreprocessing {
        // The embedded model and `dsg train` files are Fashion-MNIST models: they expect its normalisation.
        let trainedHere = model == nil || model?.hasSuffix(".safetensors") == true
        let base = trainedHere ? ImagePreprocessing.fashionMNIST : ImagePreprocessing()
        return ImagePreprocessing(
            cropFraction: cropFraction, mean: mean.flatMap(Self.numbers) ?? base.mean,
            standardDeviation: std.flatMap(Self.numbers) ?? base.standardDeviation)
    }

    /// The labelled images of `folder` (the `--images` value), shaped for `model`'s input, the first `limit` when
    /// given, with a phrase describing them.
    func load(_ path: String, for model: Model, name: String?, limit: Int?) throws -> (LabeledImages, String) {
        let all = try ImageFolder(URL(fileURLWithPath: path))
        let folder = limit.map { all.prefix($0) } ?? all
        let p = preprocessing(model: name)
        let shape = model.inputs.first?.shape ?? []
        let classes = model.shape(of: model.outputs[0]).elementCount
        let line = ProgressLine()
        let set = try folder.load(shape: shape, classes: classes, preprocessing: p) {
            line.update("decoding \($0)/\(folder.entries.count)")
        }
        line.finish()
        let values = { (v: [Float]) in v.map { String(format: "%.4g", $0) }.joined(separator: ",") }
        return (
            set,
            (set.count < all.entries.count ? "the first \(set.count) of \(all.entries.count)" : "\(set.count)")
                + " images of \(folder.folder.path) (crop \(p.cropFraction), mean \(values(p.mean)), "
                + "std \(values(p.standardDeviation)))"
        )
    }

    /// "0.485,0.456,0.406" or "127/255" as numbers; nil when any part is not a number.
    static func numbers(_ text: String) -> [Float]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { part -> Float? in
            let terms = part.split(separator: "/", omittingEmptySubsequences: false).map {
                Float($0.trimmingCharacters(in: .whitespaces))
            }
            guard terms.count == 1 || terms.count == 2, let a = terms[0] else { return nil }
            guard terms.count == 2 else { return a }
            return terms[1].map { a / $0 }
        }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        return parts.compactMap { $0 }
    }
}

import ArgumentParser
import DSG
import Foundation

extension PTQConfiguration.ActivationCalibration: ExpressibleByArgument {}
extension PTQConfiguration.WeightRange: ExpressibleByArgument {}
extension PTQConfiguration.EdgeLayers: ExpressibleByArgument {}

/// How `dsg quantize` quantizes.
package enum QuantizationMethod: String, ExpressibleByArgument, CaseIterable {
    case ptq, qat
}

/// How PTQ rounds the weights: to the nearest level, or learned by one of the reconstruction methods.
package enum Reconstruction: String, ExpressibleByArgument, CaseIterable {
    case none, adaround, brecq, qdrop

    /// The library's method; nil for nearest rounding.
    var method: ReconstructionSettings.Method? {
        switch self {
        case .none: return nil
        case .adaround: return .adaRound
        case .brecq: return .brecq
        case .qdrop: return .qDrop
        }
    }
}

package struct QuantizeCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: """
            Quantize a model without its data (PTQ from a sample file, or QAT with a generator), accuracy before \
            and after.
            """,
        discussion: """
            --method ptq calibrates on the samples of `dsg generate`; with --reconstruction adaround it then learns \
            each layer's rounding, with brecq or qdrop each block's rounding and activation step sizes, writing a \
            checkpoint after every layer or block. --method qat trains a generator against \
            the model and distils the model into a fake-quantized student on the generator's images (the QAT \
            options), writing a checkpoint after every epoch. Either continues from its checkpoint when run again.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup(title: "Labelled images (accuracy before and after on them)") var imageOptions: ImageFolderOptions

    @Option(help: "ptq (post-training, needs --samples) or qat (quantization-aware training, no samples).")
    package var method: QuantizationMethod = .ptq

    @Option(help: ArgumentHelp("Calibration samples made by `dsg generate` (ptq).", valueName: "path"))
    var samples: String?

    @Option(
        help: ArgumentHelp(
            "PTQ on this many real training images instead of --samples: the reference that uses data.",
            valueName: "count"))
    var realImages: Int?

    @Option(help: "Seed that draws the real training images.")
    var realSeed: UInt64 = 0

    @Flag(help: "Print every activation quantizer's range (calibrated by PTQ, or as QAT froze it).")
    var showRanges = false

    @Option(help: "Weight bit-width, 2 to 8.")
    var weightBits = 4

    @Option(help: "Activation bit-width, 2 to 8.")
    var activationBits = 4

    @Option(
        help: """
            Activation range estimate: minMax, meanSampleExtremes (alias ema), percentile or mse. Default: mse with \
            --reconstruction (where BRECQ and QDrop start), else meanSampleExtremes.
            """)
    var calibration: PTQConfiguration.ActivationCalibration?

    @Option(
        help: """
            Weight range per output channel: minMax, mse or symmetric (zero point 0). Default: symmetric with \
            --integer-kernels (onnxruntime's fast integer convolutions take only zero weight zero points; \
            Docs/RESULTS.md measures the difference), else mse with --reconstruction, else minMax.
            """)
    var weightRange: PTQConfiguration.WeightRange?

    @Option(help: "First convolution and last linear layer: quantize, fullPrecision or eightBit.")
    var edgeLayers: PTQConfiguration.EdgeLayers = .quantize

    @Option(
        help: """
            Weight rounding: none (nearest, the paper's PTQ), adaround (learned layer by layer), brecq (learned \
            block by block with the activation step sizes) or qdrop (brecq, dropping activation quantization at \
            random while learning).
            """)
    package var reconstruction: Reconstruction = .none

    @Option(help: "Reconstruction: Adam steps per layer (adaround) or block (brecq, qdrop).")
    var reconstructionIterations = AdaRoundSchedule().iterations

    @Flag(help: "Fold each BatchNorm into the convolution before it, then quantize (DSG keeps BatchNorm in Float32).")
    var foldBatchNorm = false

    @Flag(
        help: """
            Quantize for integer kernels (onnxruntime's QLinearConv/QLinearAdd): BatchNorm folded, convolution \
            outputs before a residual sum quantized too, biases on the integer grid. Use with --output model.onnx.
            """)
    var integerKernels = false

    @Option(
        help: ArgumentHelp(
            "Where to write the quantized model: .onnx in QDQ form (for onnxruntime and other runtimes), else safetensors.",
            valueName: "path"))
    var output = "quantized.safetensors"

    @Option(
        help: ArgumentHelp(
            "Also write the test images, labels and the quantized model's logits (safetensors), to check a runtime.",
            valueName: "path"))
    var saveLogits: String?

    @OptionGroup(title: "Quantization-aware training") var qat: QATOptions

    @Option(help: "QAT: the generator's loss, dsg or gdfq (the baseline).")
    var generatorLoss: QATConfiguration.GeneratorLoss = .dsg

    @Option(
        help: ArgumentHelp(
            """
            Checkpoint file, written after every QAT epoch (default qat-checkpoint.safetensors) or reconstruction \
            block (default reconstruction-checkpoint.safetensors); run the same command again and it continues from it.
            """, valueName: "path"))
    var checkpoint: String?

    @Option(
        help: ArgumentHelp("QAT: folder for a PNG grid of generator samples after every epoch.", valueName: "folder"))
    var grids: String?

    package init() {}

    package func validate() throws {
        if method == .ptq && (samples == nil) == (realImages == nil) {
            throw ValidationError(
                "--method ptq needs --samples (make them with `dsg generate`) or --real-images, one of them.")
        }
        if let realImages, realImages < 1 { throw ValidationError("--real-images must be at least 1.") }
        if method == .qat && (integerKernels || foldBatchNorm) {
            throw ValidationError("--integer-kernels and --fold-batch-norm are PTQ settings (--method ptq).")
        }
        try validated {
            switch method {
            case .ptq: try ptqConfiguration().validate()
            case .qat: try qatConfiguration().validate()
            }
        }
    }

    func ptqConfiguration() -> PTQConfiguration {
        var configuration = PTQConfiguration(weightBits: weightBits, activationBits: activationBits)
        // Reconstruction learns from a calibrated start; BRECQ's and QDrop's code start from least-squares ranges,
        // and so do we unless told otherwise (Docs/RESULTS.md: from ema ranges it ends far lower at 3 bits).
        let learns = reconstruction != .none
        configuration.activationCalibration = calibration ?? (learns ? .mse : .meanSampleExtremes)
        configuration.weightRange = weightRange ?? (integerKernels ? .symmetric : learns ? .mse : .minMax)
        configuration.edgeLayers = edgeLayers
        configuration.foldBatchNorm = foldBatchNorm
        configuration.integerKernels = integerKernels
        if let method = reconstruction.method {
            configuration.reconstruction = ReconstructionSettings(method: method)
            configuration.reconstruction?.rounding.iterations = reconstructionIterations
        }
        return configuration
    }

    func qatConfiguration() -> QATConfiguration {
        qat.configuration(weightBits: weightBits, activationBits: activationBits, loss: generatorLoss)
    }

    package func run() throws {
        try reportingErrors { _ = try quantize() }
    }

    /// The checkpoint of the run: QAT's, or reconstruction's.
    private var checkpointFile: URL {
        URL(
            fileURLWithPath: checkpoint
                ?? (method == .qat ? "qat-checkpoint.safetensors" : "reconstruction-checkpoint.safetensors"))
    }

    /// What decides the run besides the model: the configuration and the calibration images, as JSON.
    private func settings() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let configuration =
            method == .qat ? try encoder.encode(qatConfiguration()) : try encoder.encode(ptqConfiguration())
        return String(decoding: configuration, as: UTF8.self) + " \(samples ?? "") \(realImages ?? 0) \(realSeed)"
    }

    /// Quantizes as the options say. With `group`, this process is one of several sharing the work (QAT's
    /// batches, reconstruction's steps); only rank 0 then reports and writes files. `beforeWork` hears the model,
    /// the settings (``settings()``) and the checkpoint before anything is computed, to check them. Returns the
    /// QAT trainer, for its timing.
    @discardableResult
    package func quantize(
        group: DataParallelGroup? = nil,
        beforeWork: (_ model: Model, _ settings: String, _ checkpoint: URL) throws -> Void = { _, _, _ in }
    ) throws -> QATTrainer? {
        let model = try modelOptions.load()
        try beforeWork(model, try settings(), checkpointFile)
        let reports = (group?.rank ?? 0) == 0
        let shape = model.inputs.first?.shape ?? []
        guard imageOptions.images != nil || shape == FashionMNIST.sampleShape else {
            // Another model's images and no --images: PTQ on its samples works, accuracy on Fashion-MNIST does not.
            guard method == .ptq, samples != nil, saveLogits == nil else {
                throw FashionMNISTInputError(model: modelOptions.name, shape: shape)
            }
            let (quantized, source) = try postTraining(model, group: group)
            guard reports else { return nil }
            try write(quantized)
            say(
                "\(quantized.configuration.label) model (\(source)) written to \(output); no accuracy: it takes "
                    + "\(shape) images, and the test set here is Fashion-MNIST's (--images measures on others)")
            return nil
        }
        let (test, what) = try EvaluateCommand.testSet(
            for: model, modelOptions: modelOptions, data: dataOptions, images: imageOptions)
        let quantized: QuantizedModel, source: String
        var trainer: QATTrainer?
        switch method {
        case .ptq:
            (quantized, source) = try postTraining(model, group: group)
        case .qat:
            let qat = try QATTrainer(teacher: model, configuration: qatConfiguration(), group: group)
            trainer = qat
            let gridFolder = reports ? grids.map { URL(fileURLWithPath: $0) } : nil
            if let gridFolder {
                try FileManager.default.createDirectory(at: gridFolder, withIntermediateDirectories: true)
            }
            try runQAT(
                qat, test: test, checkpoint: checkpointFile, grids: gridFolder,
                name: "\(generatorLoss.rawValue)-\(qat.configuration.label)", reports: reports)
            (quantized, source) = (try qat.quantizedStudent(), "QAT with the \(generatorLoss.rawValue) generator")
        }
        guard reports else { return trainer }
        if showRanges {
            for r in quantized.activations {
                say(String(format: "%@  %.4f ... %.4f", r.activation, r.low, r.high))
            }
        }
        try write(quantized)
        let line = ProgressLine()
        let label = quantized.configuration.label
        let fp32 = try Evaluation.logits(of: model, on: test.images) { line.update("FP32: \($0)/\(test.count)") }
        let logits = try Evaluation.logits(of: quantized.model, on: test.images) {
            line.update("\(label): \($0)/\(test.count)")
        }
        line.finish()
        if let saveLogits { try EvaluateCommand.writeLogits(logits, of: test, model: output, to: saveLogits) }
        func accuracy(_ logits: Tensor) -> String { EvaluateCommand.accuracies(logits, of: test) }
        say(
            String(
                format: "FP32 %@  %@ %@  (top-1 agreement %.2f%%, KL from FP32 %.4f; %@; on %@; written to %@)",
                accuracy(fp32), label, accuracy(logits), 100 * Evaluation.agreement(logits, fp32),
                Evaluation.meanKLDivergence(of: logits, from: fp32), source, what, output))
        return trainer
    }

    /// Writes the quantized model to `--output`: QDQ ONNX for `.onnx`, else safetensors.
    private func write(_ quantized: QuantizedModel) throws {
        if output.hasSuffix(".onnx") {
            try quantized.writeONNX(to: URL(fileURLWithPath: output))
        } else {
            try quantized.save(to: URL(fileURLWithPath: output))
        }
    }

    /// PTQ from the sample file or real images: the quantized model and a description of its calibration images.
    /// Reconstruction's steps are shared by `group` when given, and only rank 0 shows progress.
    private func postTraining(_ model: Model, group: DataParallelGroup?) throws -> (QuantizedModel, String) {
        let images: Tensor, source: String
        if let realImages {
            images = try FashionMNIST.load(.train, from: dataOptions.directory).randomSample(realImages, seed: realSeed)
                .images
            source = "\(images.shape[0]) real training images, seed \(realSeed)"
        } else {
            let set = try SampleSet.load(from: URL(fileURLWithPath: samples ?? ""))
            (images, source) = (set.images, "\(set.count) \(set.configuration.preset.rawValue) calibration samples")
        }
        let configuration = ptqConfiguration()
        let line = ProgressLine()
        var remaining = RemainingTime()
        let resume = configuration.reconstruction.map { _ in checkpointFile }
        let quantized = try PTQCalibrator(configuration: configuration).quantize(
            model, calibration: images, checkpoint: resume, group: group
        ) { p in
            guard (group?.rank ?? 0) == 0 else { return }
            line.update(
                String(
                    format: "%@ %@ %d/%d (%@): step %d/%d, loss %.4g  ETA %@", reconstruction.rawValue,
                    reconstruction == .adaround ? "layer" : "block", p.blockIndex + 1, p.blocks, p.block, p.iteration,
                    p.iterations, p.loss,
                    remaining.estimate(done: p.stepsDone, total: p.stepsTotal)))
        }
        line.finish()
        return (quantized, source)
    }
}

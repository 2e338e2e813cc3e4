import ArgumentParser
import DSG
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a ResNet-20 or MobileNetV2 classifier on Fashion-MNIST.",
        discussion: """
            SGD with Nesterov momentum and weight decay, a cosine learning rate over all steps, random crops and \
            horizontal flips, shuffled batches from the seed. The test accuracy is measured after every epoch. \
            A checkpoint is written (atomically) after every epoch; run the same command again to resume a run \
            that was stopped, with nothing lost.
            """)

    /// The networks `dsg train` builds.
    enum Architecture: String, CaseIterable, ExpressibleByArgument {
        case resnet20, mobilenetv2
    }

    @OptionGroup var dataOptions: DataOptions

    @Option(
        help: "The network: the embedded model's, or MobileNetV2 with depthwise convolutions and small-image strides.")
    var architecture = Architecture.resnet20

    @Option(help: "MobileNetV2's width multiplier (its channels are rounded to multiples of 8).")
    var width = 0.5

    @Option(help: "Passes over the 60,000 training images.")
    var epochs = 20

    @Option(help: "Images per training step.")
    var batchSize = 128

    @Option(help: "Peak learning rate (the cosine schedule starts here and ends at 0).")
    var learningRate: Float = 0.1

    @Option(help: "Weight decay (L2 penalty added to the gradient).")
    var weightDecay: Float = 5e-4

    @Option(help: "Seed for initialisation, shuffling and augmentation.")
    var seed: UInt64 = 0

    @Option(
        help: ArgumentHelp(
            "Checkpoint file, written after every epoch and resumed from if it exists.", valueName: "path"))
    var checkpoint = "dsg-train-checkpoint.safetensors"

    @Option(
        help: ArgumentHelp(
            "Where to write the trained weights (safetensors; default <architecture>-fashion-mnist.safetensors).",
            valueName: "path"))
    var output: String?

    func validate() throws {
        guard MobileNetV2.isValidWidth(width) else { throw ValidationError("--width must be in (0, 4]; got \(width)") }
        try validated { try trainingConfiguration().validate() }
    }

    func trainingConfiguration() -> TrainingConfiguration {
        var settings = TrainingConfiguration()
        settings.epochs = epochs
        settings.batchSize = batchSize
        settings.learningRate = learningRate
        settings.weightDecay = weightDecay
        settings.seed = seed
        return settings
    }

    func run() throws {
        try reportingErrors {
            let train = try FashionMNIST.load(.train, from: dataOptions.directory)
            let test = try FashionMNIST.load(.test, from: dataOptions.directory)
            let settings = trainingConfiguration()
            let (model, metadata) = try network()
            let output = self.output ?? "\(architecture.rawValue)-fashion-mnist.safetensors"
            let trainer = try ClassifierTrainer(model: model, configuration: settings, train: train, test: test)
            trainer.modelMetadata = metadata
            let checkpointURL = URL(fileURLWithPath: checkpoint)
            if FileManager.default.fileExists(atPath: checkpointURL.path) {
                say("resuming from \(checkpoint)")
            }
            say(
                "training \(architecture.rawValue) (\(model.parameterCount) parameters) on \(train.count) images: "
                    + "\(epochs) epochs of \(trainer.stepsPerEpoch) steps, batch \(batchSize), seed \(seed)"
            )
            let line = ProgressLine()
            var reported = 0
            let history = try trainer.run(checkpoint: checkpointURL) { p in
                // Epochs finished since the last call are printed once, on their own lines.
                while reported < trainer.history.count {
                    printEpoch(trainer.history[reported], of: epochs, line: line)
                    reported += 1
                }
                line.update(
                    String(
                        format: "epoch %d/%d  step %d/%d  loss %.4f  %.0f images/s  ETA %@", p.epoch + 1, p.epochs,
                        p.step,
                        p.stepsPerEpoch, p.loss, p.imagesPerSecond, formatDuration(p.secondsRemaining)))
            }
            for report in history[reported...] { printEpoch(report, of: epochs, line: line) }
            try Safetensors.write(
                Safetensors.Contents(
                    tensors: model.stateDict,
                    metadata: metadata.merging(["dataset": "fashion-mnist", "seed": String(seed)]) { $1 }),
                to: URL(fileURLWithPath: output))
            let seconds = history.reduce(0) { $0 + $1.seconds }
            say(
                String(
                    format: "test accuracy %.2f%% after %d epochs (%@ of training); weights written to %@",
                    100 * (history.last?.testAccuracy ?? 0), history.count, formatDuration(seconds), output))
        }
    }

    /// The untrained network and the metadata that rebuilds it from a weights file or checkpoint.
    private func network() throws -> (Model, [String: String]) {
        let input = FashionMNIST.sampleShape, classes = FashionMNIST.classes
        let inputMetadata = [Model.inputShapeKey: "1x28x28"]
        switch architecture {
        case .resnet20:
            return (
                try ResNet.resnet20(input: input, classes: classes, seed: seed),
                inputMetadata.merging([Model.architectureKey: architecture.rawValue]) { $1 }
            )
        case .mobilenetv2:
            let strides = MobileNetV2.Strides.smallImages
            return (
                try MobileNetV2.build(input: input, classes: classes, width: width, strides: strides, seed: seed),
                inputMetadata.merging(Model.mobileNetV2Metadata(width: width, strides: strides)) { $1 }
            )
        }
    }

    private func printEpoch(_ r: EpochReport, of epochs: Int, line: ProgressLine) {
        line.finish()
        say(
            String(
                format: "epoch %d/%d  train loss %.4f  train accuracy %.2f%%  test accuracy %.2f%%  (%@)",
                r.epoch + 1, epochs, r.trainLoss, 100 * r.trainAccuracy, 100 * r.testAccuracy, formatDuration(r.seconds)
            ))
    }
}

import ArgumentParser
import DSG
import Foundation

extension QATConfiguration.GeneratorLoss: ExpressibleByArgument {}
extension QATConfiguration.ActivationRange: ExpressibleByArgument {}

/// The options of quantization-aware training, shared by `dsg quantize --method qat` and `dsg experiment qat`.
struct QATOptions: ParsableArguments {
    @Option(help: "QAT: epochs.")
    var epochs = 20

    @Option(help: "QAT: generator and student steps per epoch.")
    var iterationsPerEpoch = 100

    @Option(help: "QAT: images per step.")
    var qatBatchSize = 64

    @Option(help: "QAT: epochs before the student starts learning (the generator learns from the first).")
    var warmupEpochs = 4

    @Option(help: "QAT: epochs in which activation ranges follow the batches (then frozen).")
    var calibrationEpochs = 4

    @Option(
        help:
            "QAT: what each batch adds to the activation ranges' moving average: its extremes (the reference) or the mean of its samples' extremes (as PTQ's ema)."
    )
    var qatActivationRange: QATConfiguration.ActivationRange = .batchExtremes

    @Option(help: "QAT: the student's SGD learning rate.")
    var studentLearningRate: Float = 1e-4

    @Option(help: "QAT: the generator's Adam learning rate.")
    var generatorLearningRate: Float = 1e-3

    @Option(parsing: .upToNextOption, help: "QAT: epochs after which both learning rates drop by 10x.")
    var milestones: [Int] = []

    @Option(help: "QAT: seed of the generator, latents and labels.")
    var qatSeed: UInt64 = 0

    @Flag(help: "QAT, dsg loss: add the per-sample BatchNorm term with layerwise sample enhancement.")
    var layerwiseEnhancement = false

    func validate() throws {
        // Bit-widths and the loss are the commands' own; every other limit is the configuration's.
        try validated { try configuration(weightBits: 4, activationBits: 4, loss: .dsg).validate() }
    }

    func configuration(weightBits: Int, activationBits: Int, loss: QATConfiguration.GeneratorLoss) -> QATConfiguration {
        var c = QATConfiguration(weightBits: weightBits, activationBits: activationBits, generatorLoss: loss)
        c.epochs = epochs
        c.iterationsPerEpoch = iterationsPerEpoch
        c.batchSize = qatBatchSize
        c.warmupEpochs = warmupEpochs
        c.calibrationEpochs = calibrationEpochs
        c.activationRange = qatActivationRange
        c.studentLearningRate = studentLearningRate
        c.generatorLearningRate = generatorLearningRate
        c.milestones = milestones
        c.seed = qatSeed
        c.layerwiseEnhancement = layerwiseEnhancement
        return c
    }
}

/// Runs `trainer` epoch by epoch (resuming from `checkpoint`), with a progress line, one line per epoch and a
/// PNG grid of generator samples per epoch in `grids` when given.
func runQAT(_ trainer: QATTrainer, test: LabeledImages, checkpoint: URL, grids: URL?, name: String) throws {
    let line = ProgressLine()
    let c = trainer.configuration
    let total = c.epochs * c.iterationsPerEpoch
    var started: (step: Int, date: Date)?
    while trainer.history.count < c.epochs {
        try trainer.train(test: test, checkpoint: checkpoint, epochLimit: 1) { p in
            let step = p.epoch * p.iterations + p.iteration
            let start = started ?? (step, Date())
            started = start
            let rate = Double(step - start.step) / Date().timeIntervalSince(start.date)
            line.update(
                String(
                    format: "%@ epoch %d/%d  step %d/%d  generator %.4f  student %.4f%@  ETA %@", name, p.epoch + 1,
                    p.epochs, p.iteration,
                    p.iterations, p.generatorLoss, p.studentLoss, p.studentUpdates ? "" : " (warm-up)",
                    formatDuration(Double(total - step) / rate)))
        }
        let epoch = trainer.history.count, report = trainer.history[epoch - 1]
        line.finish()
        say(
            String(
                format: "%@ epoch %d/%d  generator loss %.4f  student loss %.4f  test accuracy %.2f%%  (%@)", name,
                epoch, c.epochs,
                report.generatorLoss, report.studentLoss, 100 * (report.testAccuracy ?? 0),
                formatDuration(report.seconds)))
        if let grids {
            try writeGrid(
                try trainer.generatedImages(count: 40, seed: 0),
                to: grids.appendingPathComponent("\(name)-epoch\(epoch).png").path)
        }
    }
}

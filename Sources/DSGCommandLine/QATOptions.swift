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
        help: """
            QAT: what each batch adds to the activation ranges' moving average: its extremes (the reference) or \
            the mean of its samples' extremes (as PTQ's meanSampleExtremes).
            """)
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

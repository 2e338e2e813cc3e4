import ArgumentParser
import DSG
import Foundation

/// The QAT table: GDFQ vs DSG generators at several bit-widths, next to PTQ with DSG samples and FP32. Each
/// run keeps its own checkpoint (a finished run is read back, not redone) and the PTQ samples are kept on disk,
/// so the experiment continues where it stopped when run again.
struct QATExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qat",
        abstract: "Quantization-aware training with GDFQ and DSG generators at W4A4, W5A5 and W6A6.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup(title: "Quantization-aware training") var qat: QATOptions

    @Option(parsing: .upToNextOption, help: "Bit-widths b, each run as WbAb.")
    var bits: [Int] = [4, 5, 6]

    @Option(parsing: .upToNextOption, help: "Generator losses to compare: gdfq, dsg.")
    var losses: [QATConfiguration.GeneratorLoss] = [.gdfq, .dsg]

    @Option(help: "Synthetic DSG images for the PTQ reference row.")
    var ptqCount = 256

    @Option(help: "Optimisation steps per batch of those images.")
    var ptqIterations = 500

    @Option(help: ArgumentHelp("Folder for checkpoints, grids, results.md and results.json.", valueName: "folder"))
    var output = "experiment-qat"

    @Option(help: "Evaluate on the first N test images only (for quick trials; the recorded tables use all 10,000).")
    var testImages = 10_000

    func validate() throws {
        try validated {
            for b in bits { try qat.configuration(weightBits: b, activationBits: b, loss: .dsg).validate() }
        }
        try validateSampleSet(count: ptqCount, iterations: ptqIterations, measuresDiversity: false)
        guard testImages >= 1 else { throw ValidationError("--test-images must be at least 1.") }
    }

    func run() throws {
        try reportingErrors {
            let folder = URL(fileURLWithPath: output)
            let grids = folder.appendingPathComponent("grids")
            try FileManager.default.createDirectory(at: grids, withIntermediateDirectories: true)
            let model = try modelOptions.loadForFashionMNIST()
            let test = try FashionMNIST.load(.test, from: dataOptions.directory).prefix(testImages)
            let base = qat.configuration(weightBits: 4, activationBits: 4, loss: .dsg)
            var report = QATReport(
                model: modelOptions.name, date: ISO8601DateFormatter().string(from: Date()), configuration: base,
                fp32: try Evaluation.accuracy(of: model, on: test))

            var configuration = GenerationConfiguration(preset: .dsg)
            configuration.count = ptqCount
            configuration.iterations = ptqIterations
            let line = ProgressLine()
            let samples = try DSG.generateSamples(
                from: model, configuration: configuration,
                checkpoint: folder.appendingPathComponent("samples-dsg-seed0.safetensors")
            ) { done, total in line.update("PTQ reference: generating DSG samples, iteration \(done)/\(total)") }
            line.finish()
            for b in bits {
                let q = try PTQCalibrator(configuration: PTQConfiguration(weightBits: b, activationBits: b)).quantize(
                    model, calibration: samples.images)
                report.ptq["W\(b)A\(b)"] = try Evaluation.accuracy(of: q.model, on: test)
            }
            for b in bits {
                for loss in losses {
                    let configuration = qat.configuration(weightBits: b, activationBits: b, loss: loss)
                    let name = "\(loss.rawValue)-\(configuration.label)"
                    let trainer = try QATTrainer(teacher: model, configuration: configuration)
                    try runQAT(
                        trainer, test: test, checkpoint: folder.appendingPathComponent("\(name).safetensors"),
                        grids: grids, name: name)
                    let accuracies = trainer.history.compactMap(\.testAccuracy)
                    report.qat["\(loss.rawValue)/\(configuration.label)"] = QATReport.Run(
                        final: accuracies.last ?? 0, best: accuracies.max() ?? 0,
                        seconds: trainer.history.reduce(0) { $0 + $1.seconds },
                        epochs: trainer.history)
                }
            }
            try writeJSON(report, to: folder.appendingPathComponent("results.json").path)
            let markdown = report.markdown(bits: bits, losses: losses, ptqCount: ptqCount)
            try markdown.write(to: folder.appendingPathComponent("results.md"), atomically: true, encoding: .utf8)
            say(markdown)
        }
    }
}

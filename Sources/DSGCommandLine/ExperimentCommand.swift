import ArgumentParser
import DSG
import Foundation

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Reproducible experiments that produce the tables of Docs/RESULTS.md.",
        subcommands: [PTQExperimentCommand.self, QATExperimentCommand.self, ReconstructionExperimentCommand.self])
}

/// The PTQ table: calibration sources x bit-widths x seeds, the ablation at W4A4, the margin sweep and the
/// diversity of every source. Every finished measurement is stored in `<output>/state.json` at once, so an
/// interrupted experiment continues where it stopped when run again with the same options.
struct PTQExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptq",
        abstract: "Post-training quantization with Gaussian, ZeroQ, DSG, DSG (code) and real calibration images.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Calibration images per source.")
    var count = 256

    @Option(help: "Optimisation steps per batch of synthetic images.")
    var iterations = 500

    @Option(parsing: .upToNextOption, help: "Seeds; each source and bit-width is measured once per seed.")
    var seeds: [UInt64] = [0, 1, 2]

    @Option(help: ArgumentHelp("Folder for samples, the state file, results.json and results.md.", valueName: "folder"))
    var output = "experiment-ptq"

    @Flag(help: "Skip the ablation and the margin sweep (the main table only).")
    var tableOnly = false

    @Option(help: "How many of the seeds (from the first) the ablation and margin sweep use.")
    var ablationSeeds = 1

    @Option(help: "Evaluate on the first N test images only (for quick trials; the recorded tables use all 10,000).")
    var testImages = 10_000

    @Option(
        help: """
            Activation range estimate of the quantizer: minMax, meanSampleExtremes (alias ema), percentile or mse. \
            Other than meanSampleExtremes, results go to results-<estimate>.md/json beside the default ones, \
            reusing the folder's samples.
            """)
    var calibration: PTQConfiguration.ActivationCalibration = .meanSampleExtremes

    func validate() throws {
        try validateSampleSet(count: count, iterations: iterations)
        guard !seeds.isEmpty else { throw ValidationError("--seeds needs at least one seed.") }
        guard testImages >= 1 else { throw ValidationError("--test-images must be at least 1.") }
        guard (1...seeds.count).contains(ablationSeeds) else {
            throw ValidationError("--ablation-seeds must be between 1 and the number of seeds.")
        }
    }

    func run() throws {
        try reportingErrors {
            let folder = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let experiment = try PTQExperiment(
                model: try modelOptions.loadForFashionMNIST(), data: dataOptions.directory, folder: folder,
                count: count,
                iterations: iterations, seeds: seeds, testImages: testImages, calibration: calibration)
            try experiment.run(
                ablationSeeds: tableOnly ? [] : Array(seeds.prefix(ablationSeeds)), modelName: modelOptions.name)
        }
    }
}

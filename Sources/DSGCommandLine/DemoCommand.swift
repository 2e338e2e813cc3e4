import ArgumentParser
import DSG
import Foundation

/// The README's main job: DSG against ZeroQ at W8A8 and W4A4 on one model, with pictures and a report.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Quantize a model without data: DSG vs. ZeroQ samples, W8A8 and W4A4, accuracy before and after.",
        discussion: """
            Generates DSG and ZeroQ calibration samples, quantizes with each at W8A8 and W4A4, and measures top-1 \
            on the Fashion-MNIST test set. Writes results.md and results.json, sample grids (PNG) and a scatter \
            plot of per-sample statistics (SVG) into the output folder. A stopped run continues where it was when \
            started again.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Calibration images per method.")
    var count = 64

    @Option(help: "Optimisation steps per batch of synthetic images.")
    var iterations = 200

    @Option(help: "Seed of the synthetic samples.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Output folder.", valueName: "folder"))
    var output = "dsg-demo"

    func validate() throws {
        try validateSampleSet(count: count, iterations: iterations)
    }

    func run() throws {
        try reportingErrors {
            let folder = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let experiment = try PTQExperiment(
                model: try modelOptions.loadForFashionMNIST(), data: dataOptions.directory, folder: folder,
                count: count,
                iterations: iterations, seeds: [seed], testImages: 10_000, sources: ["zeroQ", "dsg"],
                bitWidths: [(8, 8), (4, 4)])
            try experiment.run(ablationSeeds: [], modelName: modelOptions.name)
        }
    }
}

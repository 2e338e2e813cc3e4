import ArgumentParser
import DSG
import Foundation

extension GenerationConfiguration.Preset: ExpressibleByArgument {}

/// `dsg generate`; `dsg-mpi generate` takes the same options.
package struct GenerateCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Synthesise calibration samples from the model's BatchNorm statistics, without data.",
        discussion: """
            Writes the samples (safetensors, with the generation configuration in its metadata), a PNG grid of \
            them, and a JSON \
            file with the loss terms and diversity metrics. The sample file doubles as a checkpoint: run the same \
            command again after an interruption and finished batches are kept.
            """)

    @OptionGroup package var modelOptions: ModelOptions

    @Option(
        help: "Method: gaussian, zeroQ, dsgCVPR, dsg (the paper's form) or dsgCode (the official code's behaviour).")
    var preset: GenerationConfiguration.Preset = .dsg

    @Option(help: "Samples to make.")
    var count = 64

    @Option(help: "Samples optimised together (0: one per BatchNorm layer, 21 for ResNet-20).")
    var batchSize = 0

    @Option(help: "Optimisation steps per batch (default: the preset's).")
    var iterations: Int?

    @Option(help: "Adam learning rate on the images (default: the preset's).")
    var learningRate: Float?

    @Option(help: "Quantile of Gaussian-input deviations used as the slack margins (presets with margins only).")
    var marginQuantile: Double?

    @Option(help: "Seed of initialisation, labels and jitter.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Sample file (safetensors).", valueName: "path"))
    package var output = "samples.safetensors"

    @Option(help: ArgumentHelp("PNG grid of the samples.", valueName: "path"))
    var grid = "samples.png"

    @Option(
        help: ArgumentHelp(
            "JSON report: configuration, loss terms per batch, diversity metrics, time.", valueName: "path"))
    var report = "samples.json"

    package init() {}

    package func validate() throws {
        try validated { try generationConfiguration().validate() }
    }

    package func generationConfiguration() -> GenerationConfiguration {
        var o = GenerationConfiguration(preset: preset)
        o.count = count
        o.batchSize = batchSize
        o.seed = seed
        if let iterations { o.iterations = iterations }
        if let learningRate { o.learningRate = learningRate }
        // A preset without margins keeps exact alignment: the quantile sizes margins, it does not add them.
        if let marginQuantile, o.marginQuantile != nil { o.marginQuantile = marginQuantile }
        return o
    }

    package func run() throws {
        try reportingErrors {
            let model = try modelOptions.load()
            let configuration = generationConfiguration()
            let line = ProgressLine()
            var remaining = RemainingTime()
            let samples = try DSG.generateSamples(
                from: model, configuration: configuration, checkpoint: URL(fileURLWithPath: output)
            ) { done, total in
                line.update(
                    String(
                        format: "generating %@: iteration %d/%d  ETA %@", preset.rawValue, done, total,
                        remaining.estimate(done: done, total: total)))
            }
            line.finish()
            try finish(samples, model: model)
        }
    }

    /// Writes the grid and the report of a finished run and prints its summary line; `batches` (a run spread
    /// over MPI ranks) adds each batch's rank and time to the report.
    package func finish(_ samples: SampleSet, model: Model, batches: [BatchTime]? = nil) throws {
        try writeGrid(samples.images, to: grid)
        let metrics = try DiversityMetrics.measure(samples.images, model: model)
        try writeJSON(
            GenerationReport(
                configuration: samples.configuration, batchSize: samples.batchSize, losses: samples.losses,
                seconds: samples.seconds, diversity: metrics, batches: batches), to: report)
        say(
            String(
                format:
                    "%d %@ samples in %@ (%@), grid %@, report %@; "
                    + "mean |cosine| %.3f, effective rank %.1f, predicted classes %@",
                samples.count, preset.rawValue, formatDuration(samples.seconds), output, grid, report,
                metrics.meanAbsoluteCosine, metrics.effectiveRank, Self.classCounts(metrics.predictedClasses)))
    }

    /// The per-class counts of predicted classes, or for many classes (ImageNet's 1,000) how many are predicted
    /// and the most frequent ones, so the line stays readable.
    static func classCounts(_ counts: [Int]) -> String {
        guard counts.count > 20 else { return counts.map(String.init).joined(separator: " ") }
        let top = counts.indices.sorted { counts[$0] > counts[$1] }.prefix(5).filter { counts[$0] > 0 }
        return "\(counts.filter { $0 > 0 }.count) of \(counts.count) (most: "
            + top.map { "class \($0) × \(counts[$0])" }.joined(separator: ", ") + ")"
    }
}

struct GenerationReport: Codable {
    let configuration: GenerationConfiguration
    let batchSize: Int
    let losses: [LossTerms]
    let seconds: Double
    let diversity: DiversityMetrics
    /// Which rank made each batch and in how long, for a run spread over MPI ranks (absent otherwise).
    let batches: [BatchTime]?
}

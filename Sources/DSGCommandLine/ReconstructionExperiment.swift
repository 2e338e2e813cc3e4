import ArgumentParser
import DSG
import Foundation

/// The reconstruction table of Docs/RESULTS.md: calibration sources × bit-widths × methods (calibration only, or
/// calibration then AdaRound, BRECQ or QDrop), three seeds where the issue asks for them. Every finished accuracy is
/// stored in `<output>/state.json` at once and every reconstruction writes a checkpoint after each block, so an
/// interrupted experiment continues where it stopped when run again with the same options.
struct ReconstructionExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconstruction",
        abstract: """
            Reconstruction PTQ (AdaRound, BRECQ, QDrop) against calibration only (ema, mse), on Gaussian, ZeroQ, \
            DSG, DSG (code) and real calibration images, at W4A4, W3A3, W2A4 and W4A2.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Calibration images per source.")
    var count = 256

    @Option(help: "Optimisation steps per batch of synthetic images.")
    var iterations = 500

    @Option(help: "Reconstruction: Adam steps per layer (adaround) or block (brecq, qdrop), batch 32.")
    var reconstructionIterations = 500

    @Option(
        parsing: .upToNextOption,
        help: "Seeds; the first measures every cell, all of them the W3A3 and W2A4 cells of zeroQ, dsg and real.")
    var seeds: [UInt64] = [0, 1, 2]

    @Option(parsing: .upToNextOption, help: "Calibration sources (rows): gaussian, zeroQ, dsg, dsgCode, real.")
    var sources = PTQVariants.sources

    @Option(parsing: .upToNextOption, help: "Methods (columns): ema, mse, adaround, brecq, qdrop.")
    var methods = ReconstructionExperiment.Method.allCases

    @Option(parsing: .upToNextOption, help: "Bit-widths as WxAy.")
    var bitWidths = ["W4A4", "W3A3", "W2A4", "W4A2"]

    @Option(help: "The calibration reconstruction starts from: mse (as BRECQ's and QDrop's code) or ema.")
    var reconstructionBase = ReconstructionExperiment.Method.mse

    @Option(help: "The first convolution and the classifier: quantize (like the rest), fullPrecision or eightBit.")
    var edgeLayers = PTQConfiguration.EdgeLayers.quantize

    @Option(help: ArgumentHelp("Folder for samples, the state file, results.json and results.md.", valueName: "folder"))
    var output = "experiment-reconstruction"

    @Option(help: "Evaluate on the first N test images only (for quick trials; the recorded tables use all 10,000).")
    var testImages = 10_000

    func validate() throws {
        try validateSampleSet(count: count, iterations: iterations, measuresDiversity: false)
        guard !seeds.isEmpty else { throw ValidationError("--seeds needs at least one seed.") }
        guard testImages >= 1 else { throw ValidationError("--test-images must be at least 1.") }
        guard [.mse, .ema].contains(reconstructionBase) else {
            throw ValidationError("--reconstruction-base is ema or mse.")
        }
        guard reconstructionIterations >= 1 else {
            throw ValidationError("--reconstruction-iterations must be at least 1.")
        }
        for source in sources where !PTQVariants.sources.contains(source) {
            throw ValidationError("unknown source \(source); the sources are \(PTQVariants.sources)")
        }
        try validated { for bits in try parsedBitWidths() { try configuration(bits).validate() } }
    }

    /// `--bit-widths` as (weight, activation) pairs.
    func parsedBitWidths() throws -> [(Int, Int)] {
        try bitWidths.map { text in
            let parts = text.uppercased().dropFirst().split(separator: "A")
            guard text.uppercased().hasPrefix("W"), parts.count == 2, let w = Int(parts[0]), let a = Int(parts[1])
            else { throw ValidationError("--bit-widths takes WxAy, e.g. W3A3; got \(text)") }
            return (w, a)
        }
    }

    private func configuration(_ bits: (Int, Int)) -> PTQConfiguration {
        PTQConfiguration(weightBits: bits.0, activationBits: bits.1)
    }

    func run() throws {
        try reportingErrors {
            let folder = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let experiment = try ReconstructionExperiment(
                model: try modelOptions.loadForFashionMNIST(), data: dataOptions.directory, folder: folder,
                count: count, iterations: iterations, reconstructionIterations: reconstructionIterations,
                base: reconstructionBase, edgeLayers: edgeLayers, seeds: seeds, testImages: testImages)
            try experiment.run(
                sources: sources, methods: methods, bitWidths: try parsedBitWidths(), modelName: modelOptions.name)
        }
    }
}

/// The measurements behind `dsg experiment reconstruction`.
final class ReconstructionExperiment {
    /// A column of the table: how the quantized model is made from the calibration images.
    enum Method: String, CaseIterable, Codable, ExpressibleByArgument {
        /// Calibration only: per-channel min/max weights, `meanSampleExtremes` activation ranges (the official
        /// DSG code's "ema"), nearest rounding.
        case ema
        /// Calibration only: weight and activation ranges by least squared error, nearest rounding.
        case mse
        /// The base calibration (`mse` by default, ``ReconstructionExperiment/base``), then the rounding learned layer
        /// by layer.
        case adaround
        /// The base calibration, then the rounding and activation step sizes learned block by block.
        case brecq
        /// `brecq` with QDrop's drops.
        case qdrop
    }

    /// The sources whose W3A3 and W2A4 cells are measured with every seed (the others with the first).
    static let seededSources: Set<String> = ["zeroQ", "dsg", "real"]

    let model: Model
    let images: CalibrationImages
    let test: LabeledImages
    let reconstructionIterations: Int, seeds: [UInt64]
    /// The calibration the reconstruction methods start from (`mse` or `ema`).
    let base: Method
    /// The policy for the first and last layers, in every cell.
    let edgeLayers: PTQConfiguration.EdgeLayers
    let folder: URL
    private let state: ExperimentState
    private let line = ProgressLine()
    private let started = Date()

    init(
        model: Model, data: URL, folder: URL, count: Int, iterations: Int, reconstructionIterations: Int,
        base: Method = .mse, edgeLayers: PTQConfiguration.EdgeLayers = .quantize, seeds: [UInt64], testImages: Int
    ) throws {
        (self.model, self.folder, self.reconstructionIterations, self.base, self.edgeLayers, self.seeds) =
            (model, folder, reconstructionIterations, base, edgeLayers, seeds)
        images = CalibrationImages(
            model: model, train: try FashionMNIST.load(.train, from: data), folder: folder, count: count,
            iterations: iterations)
        test = try FashionMNIST.load(.test, from: data).prefix(testImages)
        state = try ExperimentState(
            url: folder.appendingPathComponent("state.json"),
            settings: [
                "count": count, "iterations": iterations, "reconstructionIterations": reconstructionIterations,
                "testImages": test.count, "model": ExperimentState.key(model.fingerprint),
                "reconstructionBase": base == .mse ? 1 : 0,
                // The policy's position in `EdgeLayers.allCases` (0, quantize, in folders that predate it).
                "edgeLayers": PTQConfiguration.EdgeLayers.allCases.firstIndex(of: edgeLayers) ?? 0,
            ])
    }

    private func status(_ text: String) {
        line.update("[\(formatDuration(Date().timeIntervalSince(started)))] \(text)")
    }

    /// The PTQ settings of `method` at `bits`.
    func configuration(_ method: Method, bits: (Int, Int)) -> PTQConfiguration {
        var c = PTQConfiguration(weightBits: bits.0, activationBits: bits.1)
        c.edgeLayers = edgeLayers
        switch method {
        case .ema: break
        case .mse: (c.weightRange, c.activationCalibration) = (.mse, .mse)
        case .adaround, .brecq, .qdrop:
            c = configuration(base, bits: bits)
            // The same names as `dsg quantize --reconstruction`.
            c.reconstruction = Reconstruction(rawValue: method.rawValue)?.method.map(ReconstructionSettings.init)
            c.reconstruction?.rounding.iterations = reconstructionIterations
        }
        return c
    }

    /// The seeds of a cell: all of them for the W3A3 and W2A4 cells of ``seededSources``, else the first.
    func seeds(source: String, bits: (Int, Int)) -> [UInt64] {
        Self.seededSources.contains(source) && [(3, 3), (2, 4)].contains(where: { $0 == bits }) ? seeds : [seeds[0]]
    }

    /// The test accuracy of one cell (read back when finished), timing its quantization.
    func accuracy(_ source: String, seed: UInt64, bits: (Int, Int), method: Method) throws -> Double {
        let cell = "\(source)/seed\(seed)/W\(bits.0)A\(bits.1)/\(method.rawValue)"
        return try state.measured("accuracy/" + cell) {
            let (calibration, _) = try images.images(source, seed: seed, status: status)
            let checkpoint = folder.appendingPathComponent(
                "checkpoint-\(cell.replacingOccurrences(of: "/", with: "-")).safetensors")
            // A cell resumed from its checkpoint would time only its rest: its time is not recorded.
            let resumed = FileManager.default.fileExists(atPath: checkpoint.path)
            let start = Date()
            var remaining = RemainingTime()
            let q = try PTQCalibrator(configuration: configuration(method, bits: bits)).quantize(
                model, calibration: calibration, checkpoint: checkpoint
            ) { p in
                self.status(
                    "\(cell): block \(p.blockIndex + 1)/\(p.blocks), step \(p.iteration)/\(p.iterations), "
                        + "ETA \(remaining.estimate(done: p.stepsDone, total: p.stepsTotal))")
            }
            if !resumed { _ = try state.measured("seconds/" + cell) { Date().timeIntervalSince(start) } }
            let accuracy = try Evaluation.accuracy(of: q.model, on: test) {
                self.status("\(cell): evaluating \($0)/\(self.test.count)")
            }
            try? FileManager.default.removeItem(at: checkpoint)
            return accuracy
        }
    }

    /// Measures every cell (or reads it back), writes results.md/json and prints the tables.
    func run(sources: [String], methods: [Method], bitWidths: [(Int, Int)], modelName: String) throws {
        let fp32 = try state.measured("accuracy/fp32") {
            try Evaluation.accuracy(of: model, on: test) { self.status("FP32: \($0)/\(self.test.count)") }
        }
        var report = ReconstructionReport(
            model: modelName, date: ISO8601DateFormatter().string(from: Date()), calibrationImages: images.count,
            iterations: images.iterations, reconstructionIterations: reconstructionIterations,
            batchSize: AdaRoundSchedule().batchSize, reconstructionBase: base, edgeLayers: edgeLayers, seeds: seeds,
            testImages: test.count,
            fp32: fp32)
        // The first seed's cells first, so that a short run fills the whole table once before repeating any.
        for round in 0..<2 {
            for bits in bitWidths {
                for source in sources {
                    let cellSeeds = seeds(source: source, bits: bits)
                    for method in methods {
                        let key = "\(source)/W\(bits.0)A\(bits.1)/\(method.rawValue)"
                        report.accuracy[key] = try (round == 0 ? Array(cellSeeds.prefix(1)) : cellSeeds).map {
                            try accuracy(source, seed: $0, bits: bits, method: method)
                        }
                        report.seconds[key] = cellSeeds.compactMap {
                            state["seconds/\(source)/seed\($0)/W\(bits.0)A\(bits.1)/\(method.rawValue)"]
                        }
                    }
                }
            }
        }
        report.peakResidentMegabytes = peakResidentMegabytes()
        line.finish()
        let markdown = report.markdown(sources: sources, methods: methods, bitWidths: bitWidths)
        try markdown.write(to: folder.appendingPathComponent("results.md"), atomically: true, encoding: .utf8)
        try writeJSON(report, to: folder.appendingPathComponent("results.json").path)
        say(markdown)
    }
}

/// The process's peak resident memory so far, in MB (`getrusage`'s maximum resident set size, kB on Linux).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

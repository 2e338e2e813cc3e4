import ArgumentParser
import DSG
import Foundation

/// The measurements behind `dsg experiment ptq`, resumable through a state file of finished results.
final class PTQExperiment {
    /// The full table of Docs/RESULTS.md.
    static let allBitWidths = [(8, 8), (6, 6), (4, 8), (4, 4)]
    static let allSources = ["gaussian", "zeroQ", "dsg", "dsgCode", "real"]

    let model: Model
    let sources: [String]
    let bitWidths: [(Int, Int)]
    let folder: URL
    let count: Int, iterations: Int, seeds: [UInt64]
    /// The activation range estimate of every quantization. Results of the default (`ema`) are stored under
    /// plain keys and written to results.md/json; others get their own keys and files, so that one folder's
    /// samples serve several estimates.
    let calibration: PTQConfiguration.ActivationCalibration
    let train: LabeledImages, test: LabeledImages
    private var state: [String: Double]
    private let stateURL: URL
    private let line = ProgressLine()
    private let started = Date()

    init(
        model: Model, data: URL, folder: URL, count: Int, iterations: Int, seeds: [UInt64], testImages: Int,
        sources: [String] = allSources, bitWidths: [(Int, Int)] = allBitWidths, calibration: PTQConfiguration.ActivationCalibration = .ema
    ) throws {
        (self.model, self.folder, self.count, self.iterations, self.seeds) = (model, folder, count, iterations, seeds)
        self.calibration = calibration
        (self.sources, self.bitWidths) = (sources, bitWidths)
        train = try FashionMNIST.load(.train, from: data)
        test = try FashionMNIST.load(.test, from: data).prefix(testImages)
        stateURL = folder.appendingPathComponent("state.json")
        state = (try? JSONDecoder().decode([String: Double].self, from: Data(contentsOf: stateURL))) ?? [:]
        // Results of other settings must not mix with these: the settings are part of the state.
        let settings = Double((count * 100_000 + iterations) * 100_000 + test.count)
        if let saved = state["settings"], saved != settings {
            throw ValidationError("\(stateURL.path) holds results of other --count, --iterations or --test-images; use another --output")
        }
        state["settings"] = settings
    }

    /// A measurement, computed once and remembered in the state file.
    private func measured(_ key: String, _ compute: () throws -> Double) throws -> Double {
        if let value = state[key] { return value }
        let value = try compute()
        state[key] = value
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: stateURL, options: .atomic)
        return value
    }

    private func status(_ text: String) {
        line.update("[\(formatDuration(Date().timeIntervalSince(started)))] \(text)")
    }

    /// Generation options of a named source or ablation variant.
    func options(_ name: String, seed: UInt64) -> GenerationOptions {
        var o: GenerationOptions
        switch name {
        case "gaussian": o = GenerationOptions(preset: .gaussian)
        case "zeroQ": o = GenerationOptions(preset: .zeroQ)
        case "dsgCode": o = GenerationOptions(preset: .dsgCode)
        case "zeroQ+SDA":
            o = GenerationOptions(preset: .zeroQ)
            o.marginQuantile = 0.9
        case "zeroQ+LSE":
            o = GenerationOptions(preset: .zeroQ)
            o.enhancement = .paper(factor: 2)
        case "zeroQ+SCI":
            o = GenerationOptions(preset: .zeroQ)
            o.correlation = .differentiable
        case "zeroQ+SDA+LSE+SCI":
            o = GenerationOptions(preset: .dsgCVPR)
            o.correlation = .differentiable
        case "dsg-priors":
            o = GenerationOptions(preset: .dsg)
            (o.weights.totalVariation, o.weights.l2) = (0, 0)
        case "dsg-CE":
            o = GenerationOptions(preset: .dsg)
            o.weights.crossEntropy = 0
        case "dsg": o = GenerationOptions(preset: .dsg)
        default:
            // "dsg@q": the dsg preset with margin quantile q. The names are this file's own, not user input.
            guard name.hasPrefix("dsg@"), let q = Double(name.dropFirst(4)) else { preconditionFailure("unknown source \(name)") }
            o = GenerationOptions(preset: .dsg)
            o.marginQuantile = q
        }
        o.count = count
        o.seed = seed
        if o.iterations > 0 { o.iterations = iterations }
        return o
    }

    /// The calibration images of a source for a seed: synthetic ones are generated (and kept on disk, so an
    /// interrupted run keeps finished batches); real ones are `count` training images drawn with the seed.
    func samples(_ name: String, seed: UInt64) throws -> (images: Tensor, seconds: Double) {
        if name == "real" { return (train.randomSample(count, seed: seed).images, 0) }
        let file = folder.appendingPathComponent("samples-\(name)-seed\(seed).safetensors")
        var first: (done: Int, date: Date)?
        let set = try DSG.generateSamples(from: model, options: options(name, seed: seed), checkpoint: file) { done, total in
            // The rate since the first report of this run (a resumed run starts past its finished batches).
            let start = first ?? (done, Date())
            first = start
            let rate = Double(done - start.done) / Date().timeIntervalSince(start.date)
            status("generating \(name), seed \(seed): iteration \(done)/\(total), ETA \(formatDuration(Double(total - done) / rate))")
        }
        return (set.images, set.seconds)
    }

    func accuracy(_ name: String, seed: UInt64, bits: (Int, Int)) throws -> Double {
        let key = "accuracy/\(name)/seed\(seed)/W\(bits.0)A\(bits.1)" + (calibration == .ema ? "" : "/\(calibration.rawValue)")
        return try measured(key) {
            let (images, seconds) = try samples(name, seed: seed)
            _ = try measured("seconds/\(name)/seed\(seed)") { seconds }
            var configuration = PTQConfiguration(weightBits: bits.0, activationBits: bits.1)
            configuration.activationCalibration = calibration
            let q = try PTQCalibrator(configuration: configuration).quantize(model, calibration: images)
            return try Evaluation.accuracy(of: q.model, on: test) { self.status("\(name), seed \(seed), W\(bits.0)A\(bits.1): \($0)/\(self.test.count)") }
        }
    }

    /// Everything `results.md` shows, for programs: accuracies per seed (fractions), seconds, diversity.
    struct Report: Codable {
        var model: String, date: String
        var calibrationImages: Int, iterations: Int, seeds: [UInt64], ablationSeeds: [UInt64], testImages: Int
        var activationCalibration: PTQConfiguration.ActivationCalibration
        var fp32: Double
        /// "source/WxAy" → top-1 per seed.
        var accuracy: [String: [Double]] = [:]
        /// Source → generation seconds per seed.
        var generationSeconds: [String: [Double]] = [:]
        /// Ablation variant → W4A4 top-1 per ablation seed.
        var ablation: [String: [Double]] = [:]
        /// Source → diversity metrics of its first seed's images.
        var diversity: [String: DiversityMetrics] = [:]
    }

    func run(ablationSeeds: [UInt64], modelName: String) throws {
        let fp32 = try measured("accuracy/fp32") { try Evaluation.accuracy(of: model, on: test) { self.status("FP32: \($0)/\(self.test.count)") } }
        var report = Report(
            model: modelName, date: ISO8601DateFormatter().string(from: Date()), calibrationImages: count, iterations: iterations,
            seeds: seeds, ablationSeeds: ablationSeeds, testImages: test.count, activationCalibration: calibration, fp32: fp32)
        var table = "| Calibration | " + bitWidths.map { "W\($0.0)A\($0.1)" }.joined(separator: " | ") + " | generation time |\n"
        table += "|---|" + String(repeating: "---|", count: bitWidths.count + 1) + "\n"
        for name in sources {
            var cells: [String] = []
            for bits in bitWidths {
                let values = try seeds.map { try accuracy(name, seed: $0, bits: bits) }
                report.accuracy["\(name)/W\(bits.0)A\(bits.1)"] = values
                cells.append(summary(values))
            }
            let seconds = seeds.compactMap { state["seconds/\(name)/seed\($0)"] }
            if name != "real" { report.generationSeconds[name] = seconds }
            cells.append(name == "real" ? "-" : String(format: "%.0f s", seconds.reduce(0, +) / Double(max(seconds.count, 1))))
            table += "| \(name) | " + cells.joined(separator: " | ") + " |\n"
        }
        var markdown = String(format: "FP32: %.2f%% on %d test images; %d calibration images per source, %d iterations, seeds %@; activation ranges: %@\n\n",
            100 * fp32, test.count, count, iterations, seeds.map(String.init).joined(separator: ", "), calibration.rawValue) + table
        if !ablationSeeds.isEmpty {
            var rows = "| Variant (W4A4) | top-1 |\n|---|---|\n"
            // dsg-priors and dsg-CE: the dsg preset without its image priors or without cross-entropy, what it
            // adds to the paper's three terms.
            for name in ["zeroQ", "zeroQ+SDA", "zeroQ+LSE", "zeroQ+SCI", "zeroQ+SDA+LSE+SCI", "dsg-priors", "dsg-CE", "dsg@0.5", "dsg@0.8", "dsg", "dsg@1.0"] {
                let values = try ablationSeeds.map { try accuracy(name, seed: $0, bits: (4, 4)) }
                report.ablation[name] = values
                rows += "| \(name) | " + summary(values) + " |\n"
            }
            markdown += "\nAblation and margin quantile (dsg = 0.9), seeds \(ablationSeeds.map(String.init).joined(separator: ", ")):\n\n" + rows
        }
        var diversity = "| Source | mean abs. cosine | effective rank | mean spread (first / last BN) | alignment residual (mean over layers) | classes predicted / largest class |\n|---|---|---|---|---|---|\n"
        for name in sources {
            let (images, _) = try samples(name, seed: seeds[0])
            try writeGrid(images, to: folder.appendingPathComponent("grid-\(name).png").path)
            let m = try DiversityMetrics.measure(images, model: model)
            report.diversity[name] = m
            diversity += String(format: "| %@ | %.3f | %.1f | %.3f / %.3f | %.3f | %d / %.0f%% |\n", name, m.meanAbsoluteCosine, m.effectiveRank,
                m.meanSpread.first ?? 0, m.meanSpread.last ?? 0, m.alignmentResidual.reduce(0, +) / Double(max(m.alignmentResidual.count, 1)),
                m.predictedClasses.filter { $0 > 0 }.count, 100 * Double(m.predictedClasses.max() ?? 0) / Double(images.shape[0]))
        }
        markdown += "\nDiversity (seed \(seeds[0])):\n\n" + diversity
        if sources.contains("dsg") && sources.contains("zeroQ") { try writeScatter(seed: seeds[0]) }
        line.finish()
        let results = calibration == .ema ? "results" : "results-\(calibration.rawValue)"
        try markdown.write(to: folder.appendingPathComponent(results + ".md"), atomically: true, encoding: .utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: folder.appendingPathComponent(results + ".json"), options: .atomic)
        say(markdown)
    }

    /// Per-sample (mean, deviation) of one channel of the second BatchNorm layer's input, for real images and the
    /// ZeroQ and DSG samples: ZeroQ's points gather at the BatchNorm statistics, real and DSG images spread
    /// (DSG-SPEC §8.2).
    func writeScatter(seed: UInt64) throws {
        let layer = model.batchNormLayers[min(1, model.batchNormLayers.count - 1)]
        let target = BatchNormTarget(model: model, layer: layer)
        let channel = 0
        var series: [ScatterPlot.Series] = []
        // Real training images are always drawn (they cost no generation): they are what the others imitate.
        for (name, color) in [("real", "#2ca02c"), ("zeroQ", "#d62728"), ("dsg", "#1f77b4")] where name == "real" || sources.contains(name) {
            let (images, _) = try samples(name, seed: seed)
            let executor = try GraphExecutor(model: model, batchSize: images.shape[0], backward: false)
            try executor.forward([images], training: false)
            var stats = target.emptyStatistics(batch: images.shape[0])
            executor.withValue(layer.input) { stats.measure($0) }
            let points = (0..<stats.batch).map { n in
                (x: Double(stats.means[n * stats.channels + channel]), y: Double(stats.deviations[n * stats.channels + channel]))
            }
            series.append(ScatterPlot.Series(name: name, color: color, points: points))
        }
        series.append(ScatterPlot.Series(name: "BatchNorm statistics", color: "#000000", points: [(Double(target.mean[channel]), Double(target.deviation[channel]))]))
        let plot = ScatterPlot(
            title: "Per-sample statistics of \(layer.name)'s input, channel \(channel)",
            xLabel: "per-sample mean", yLabel: "per-sample standard deviation", series: series)
        try plot.svg().write(to: folder.appendingPathComponent("scatter.svg"), atomically: true, encoding: .utf8)
    }

    /// "91.23 ± 0.45" (mean and sample standard deviation, in %), or the single value.
    func summary(_ values: [Double]) -> String {
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return String(format: "%.2f", 100 * mean) }
        let sd = (values.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
        return String(format: "%.2f ± %.2f", 100 * mean, 100 * sd)
    }
}

import DSG
import Foundation

/// The measurements behind `dsg experiment ptq` (and `dsg demo`): calibration sources × bit-widths × seeds,
/// the W4A4 ablation, diversity, sample grids and the scatter plot. Every finished accuracy is kept in the
/// folder's `state.json` (``ExperimentState``) and every sample set in its own file, so a stopped run continues.
final class PTQExperiment {
    /// The bit-widths of the full table of Docs/RESULTS.md.
    static let allBitWidths = [(8, 8), (6, 6), (4, 8), (4, 4)]

    let model: Model
    let sources: [String]
    let bitWidths: [(Int, Int)]
    let folder: URL
    let count: Int, iterations: Int, seeds: [UInt64]
    /// The activation range estimate of every quantization. Results of the default (`meanSampleExtremes`) are
    /// stored under plain keys and written to results.md/json; others get their own keys and files, so that one
    /// folder's samples serve several estimates.
    let calibration: PTQConfiguration.ActivationCalibration
    let calibrationImages: CalibrationImages
    let test: LabeledImages
    private let state: ExperimentState
    private let line = ProgressLine()
    private let started = Date()

    init(
        model: Model, data: URL, folder: URL, count: Int, iterations: Int, seeds: [UInt64], testImages: Int,
        sources: [String] = PTQVariants.sources, bitWidths: [(Int, Int)] = allBitWidths,
        calibration: PTQConfiguration.ActivationCalibration = .meanSampleExtremes
    ) throws {
        (self.model, self.folder, self.count, self.iterations, self.seeds) = (model, folder, count, iterations, seeds)
        self.calibration = calibration
        (self.sources, self.bitWidths) = (sources, bitWidths)
        calibrationImages = CalibrationImages(
            model: model, train: try FashionMNIST.load(.train, from: data), folder: folder, count: count,
            iterations: iterations)
        test = try FashionMNIST.load(.test, from: data).prefix(testImages)
        state = try ExperimentState(
            url: folder.appendingPathComponent("state.json"),
            settings: [
                "count": count, "iterations": iterations, "testImages": test.count,
                "model": ExperimentState.key(model.fingerprint),
            ])
    }

    private func status(_ text: String) {
        line.update("[\(formatDuration(Date().timeIntervalSince(started)))] \(text)")
    }

    /// The calibration images of a source for a seed (``CalibrationImages``).
    func samples(_ name: String, seed: UInt64) throws -> (images: Tensor, seconds: Double) {
        try calibrationImages.images(name, seed: seed, status: status)
    }

    func accuracy(_ name: String, seed: UInt64, bits: (Int, Int)) throws -> Double {
        let estimate = calibration == .meanSampleExtremes ? "" : "/\(calibration.rawValue)"
        return try state.measured("accuracy/\(name)/seed\(seed)/W\(bits.0)A\(bits.1)" + estimate) {
            let (images, seconds) = try samples(name, seed: seed)
            _ = try state.measured("seconds/\(name)/seed\(seed)") { seconds }
            var configuration = PTQConfiguration(weightBits: bits.0, activationBits: bits.1)
            configuration.activationCalibration = calibration
            let q = try PTQCalibrator(configuration: configuration).quantize(model, calibration: images)
            return try Evaluation.accuracy(of: q.model, on: test) {
                self.status("\(name), seed \(seed), W\(bits.0)A\(bits.1): \($0)/\(self.test.count)")
            }
        }
    }

    /// Measures everything (or reads it back), writes results.md/json, the grids and the scatter plot, and
    /// prints the tables.
    func run(ablationSeeds: [UInt64], modelName: String) throws {
        let fp32 = try state.measured("accuracy/fp32") {
            try Evaluation.accuracy(of: model, on: test) { self.status("FP32: \($0)/\(self.test.count)") }
        }
        var report = PTQReport(
            model: modelName, date: ISO8601DateFormatter().string(from: Date()), calibrationImages: count,
            iterations: iterations, seeds: seeds, ablationSeeds: ablationSeeds, testImages: test.count,
            activationCalibration: calibration, fp32: fp32)
        for name in sources {
            for bits in bitWidths {
                report.accuracy["\(name)/W\(bits.0)A\(bits.1)"] = try seeds.map {
                    try accuracy(name, seed: $0, bits: bits)
                }
            }
            if name != "real" {
                report.generationSeconds[name] = seeds.compactMap { state["seconds/\(name)/seed\($0)"] }
            }
        }
        if !ablationSeeds.isEmpty {
            for name in PTQVariants.ablation {
                report.ablation[name] = try ablationSeeds.map { try accuracy(name, seed: $0, bits: (4, 4)) }
            }
        }
        for name in sources {
            let (images, _) = try samples(name, seed: seeds[0])
            try writeGrid(images, to: folder.appendingPathComponent("grid-\(name).png").path)
            report.diversity[name] = try DiversityMetrics.measure(images, model: model)
        }
        if sources.contains("dsg") && sources.contains("zeroQ") { try writeScatter(seed: seeds[0]) }
        line.finish()
        let markdown = report.markdown(sources: sources, bitWidths: bitWidths, ablation: PTQVariants.ablation)
        let results = calibration == .meanSampleExtremes ? "results" : "results-\(calibration.rawValue)"
        try markdown.write(to: folder.appendingPathComponent(results + ".md"), atomically: true, encoding: .utf8)
        try writeJSON(report, to: folder.appendingPathComponent(results + ".json").path)
        say(markdown)
    }

    /// Per-sample (mean, deviation) of one channel of the second BatchNorm layer's input, for real images and the
    /// ZeroQ and DSG samples: ZeroQ's points gather at the BatchNorm statistics, real and DSG images spread
    /// (Docs/DSG.md, diversity).
    func writeScatter(seed: UInt64) throws {
        let layer = model.batchNormLayers[min(1, model.batchNormLayers.count - 1)]
        let target = try BatchNormTarget(model: model, layer: layer)
        let channel = 0
        var series: [ScatterPlot.Series] = []
        // Real training images are always drawn (they cost no generation): they are what the others imitate.
        for (name, color) in [("real", "#2ca02c"), ("zeroQ", "#d62728"), ("dsg", "#1f77b4")]
        where name == "real" || sources.contains(name) {
            let stats = try SampleStatistics.measure(try samples(name, seed: seed).images, model: model, layer: layer)
            let points = (0..<stats.batch).map { n in
                (
                    x: Double(stats.means[n * stats.channels + channel]),
                    y: Double(stats.deviations[n * stats.channels + channel])
                )
            }
            series.append(ScatterPlot.Series(name: name, color: color, points: points))
        }
        series.append(
            ScatterPlot.Series(
                name: "BatchNorm statistics", color: "#000000",
                points: [(Double(target.mean[channel]), Double(target.deviation[channel]))]))
        let plot = ScatterPlot(
            title: "Per-sample statistics of \(layer.name)'s input, channel \(channel)",
            xLabel: "per-sample mean", yLabel: "per-sample standard deviation", series: series)
        try plot.svg().write(to: folder.appendingPathComponent("scatter.svg"), atomically: true, encoding: .utf8)
    }
}

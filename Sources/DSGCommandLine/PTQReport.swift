import DSG
import Foundation

/// Everything `results.md` of `dsg experiment ptq` shows, for programs (`results.json`): accuracies per seed
/// (fractions), generation seconds, ablation, diversity; and its rendering as Markdown tables.
struct PTQReport: Codable {
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

    /// The main table, the ablation (when measured) and the diversity table, rows in the given orders.
    func markdown(sources: [String], bitWidths: [(Int, Int)], ablation names: [String]) -> String {
        var table =
            "| Calibration | " + bitWidths.map { "W\($0.0)A\($0.1)" }.joined(separator: " | ")
            + " | generation time |\n"
        table += "|---|" + String(repeating: "---|", count: bitWidths.count + 1) + "\n"
        for name in sources {
            var cells = bitWidths.map { Self.summary(accuracy["\(name)/W\($0.0)A\($0.1)"] ?? []) }
            let seconds = generationSeconds[name] ?? []
            cells.append(
                name == "real" ? "-" : String(format: "%.0f s", seconds.reduce(0, +) / Double(max(seconds.count, 1))))
            table += "| \(name) | " + cells.joined(separator: " | ") + " |\n"
        }
        var markdown =
            String(
                format:
                    "FP32: %.2f%% on %d test images; %d calibration images per source, %d iterations, seeds %@; "
                    + "activation ranges: %@\n\n",
                100 * fp32, testImages, calibrationImages, iterations, seeds.map(String.init).joined(separator: ", "),
                activationCalibration.rawValue) + table
        if !ablationSeeds.isEmpty {
            var rows = "| Variant (W4A4) | top-1 |\n|---|---|\n"
            for name in names { rows += "| \(name) | " + Self.summary(ablation[name] ?? []) + " |\n" }
            markdown +=
                "\nAblation and margin quantile (dsg = 0.9), "
                + "seeds \(ablationSeeds.map(String.init).joined(separator: ", ")):\n\n"
                + rows
        }
        var rows =
            "| Source | mean abs. cosine | effective rank | mean spread (first / last BN) "
            + "| alignment residual (mean over layers) | classes predicted / largest class |\n"
            + "|---|---|---|---|---|---|\n"
        for name in sources {
            guard let m = diversity[name] else { continue }
            let images = m.predictedClasses.reduce(0, +)
            rows += String(
                format: "| %@ | %.3f | %.1f | %.3f / %.3f | %.3f | %d / %.0f%% |\n", name, m.meanAbsoluteCosine,
                m.effectiveRank,
                m.meanSpread.first ?? 0, m.meanSpread.last ?? 0,
                m.alignmentResidual.reduce(0, +) / Double(max(m.alignmentResidual.count, 1)),
                m.predictedClasses.filter { $0 > 0 }.count, 100 * Double(m.predictedClasses.max() ?? 0) / Double(images)
            )
        }
        return markdown + "\nDiversity (seed \(seeds[0])):\n\n" + rows
    }

    /// "91.23 ± 0.45" (mean and sample standard deviation, in %), or the single value.
    static func summary(_ values: [Double]) -> String {
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return String(format: "%.2f", 100 * mean) }
        let sd = (values.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
        return String(format: "%.2f ± %.2f", 100 * mean, 100 * sd)
    }
}

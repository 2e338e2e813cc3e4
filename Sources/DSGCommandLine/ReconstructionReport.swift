import DSG
import Foundation

/// Everything `results.md` of `dsg experiment reconstruction` shows, for programs (`results.json`): accuracies
/// per seed (fractions) and quantization seconds per seed, by `source/WxAy/method`; and its Markdown tables.
struct ReconstructionReport: Codable {
    var model: String, date: String
    var calibrationImages: Int, iterations: Int, reconstructionIterations: Int, batchSize: Int
    /// The calibration the reconstruction methods start from.
    var reconstructionBase: ReconstructionExperiment.Method
    /// The first convolution's and the classifier's policy.
    var edgeLayers: PTQConfiguration.EdgeLayers
    var seeds: [UInt64], testImages: Int
    var fp32: Double
    /// "source/WxAy/method" → top-1 per seed.
    var accuracy: [String: [Double]] = [:]
    /// "source/WxAy/method" → seconds to quantize, per seed (none for a cell resumed after a kill).
    var seconds: [String: [Double]] = [:]
    /// The process's peak resident memory when the report was written.
    var peakResidentMegabytes = 0.0

    /// One table per bit-width (sources down, methods across), then the mean quantization time per method.
    func markdown(
        sources: [String], methods: [ReconstructionExperiment.Method], bitWidths: [(Int, Int)]
    ) -> String {
        var markdown = String(
            format:
                "FP32: %.2f%% on %d test images; %d calibration images per source (%d generation iterations); "
                + "reconstruction from %@ ranges, %d steps per layer or block, batch %d; edge layers: %@; seeds %@; "
                + "peak resident memory %.0f MB\n",
            100 * fp32, testImages, calibrationImages, iterations, reconstructionBase.rawValue,
            reconstructionIterations, batchSize, edgeLayers.rawValue,
            seeds.map(String.init).joined(separator: ", "), peakResidentMegabytes)
        let header = "| Calibration | " + methods.map(\.rawValue).joined(separator: " | ") + " |\n"
        let rule = "|---|" + String(repeating: "---|", count: methods.count) + "\n"
        for bits in bitWidths {
            markdown += "\nW\(bits.0)A\(bits.1):\n\n" + header + rule
            for source in sources {
                let cells = methods.map { method in
                    accuracy["\(source)/W\(bits.0)A\(bits.1)/\(method.rawValue)"].map(PTQReport.summary) ?? "-"
                }
                markdown += "| \(source) | " + cells.joined(separator: " | ") + " |\n"
            }
        }
        markdown +=
            "\nMean seconds to quantize (calibration and reconstruction, not evaluation):\n\n| Bit-widths | "
            + methods.map(\.rawValue).joined(separator: " | ") + " |\n" + rule
        for bits in bitWidths {
            let cells = methods.map { method -> String in
                let all = sources.flatMap { seconds["\($0)/W\(bits.0)A\(bits.1)/\(method.rawValue)"] ?? [] }
                return all.isEmpty ? "-" : String(format: "%.0f", all.reduce(0, +) / Double(all.count))
            }
            markdown += "| W\(bits.0)A\(bits.1) | " + cells.joined(separator: " | ") + " |\n"
        }
        return markdown
    }
}

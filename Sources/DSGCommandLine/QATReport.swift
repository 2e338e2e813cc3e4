import DSG
import Foundation

/// Everything `results.md` of `dsg experiment qat` shows, for programs (`results.json`), and its rendering.
struct QATReport: Codable {
    var model: String, date: String
    var configuration: QATConfiguration
    var fp32: Double
    /// "loss/WxAx" → final top-1, best top-1 over epochs, wall seconds.
    var qat: [String: Run] = [:]
    /// "WxAx" → top-1 of PTQ with `ptqCount` DSG samples.
    var ptq: [String: Double] = [:]

    struct Run: Codable { var final: Double, best: Double, seconds: Double, epochs: [QATEpoch] }

    /// The table of results.md: the PTQ reference row and one row per generator loss, final (best) top-1.
    func markdown(bits: [Int], losses: [QATConfiguration.GeneratorLoss], ptqCount: Int) -> String {
        let r = self, c = configuration
        var s = String(
            format:
                "FP32: %.2f%%. QAT: %d epochs x %d iterations, batch %d, warm-up %d, activation ranges from %@, "
                + "seed %llu; top-1 after the last epoch (best epoch in brackets).\n\n",
            100 * r.fp32, c.epochs, c.iterationsPerEpoch, c.batchSize, c.warmupEpochs, c.activationRange.rawValue,
            c.seed)
        s +=
            "| Method | " + bits.map { "W\($0)A\($0)" }.joined(separator: " | ") + " | wall time |\n|---|"
            + String(repeating: "---|", count: bits.count + 1) + "\n"
        s +=
            "| PTQ, \(ptqCount) DSG samples | "
            + bits.map { String(format: "%.2f", 100 * (r.ptq["W\($0)A\($0)"] ?? 0)) }.joined(separator: " | ")
            + " | - |\n"
        for loss in losses {
            let runs = bits.map { r.qat["\(loss.rawValue)/W\($0)A\($0)"] }
            s +=
                "| QAT, \(loss.rawValue) generator | "
                + runs.map { run in run.map { String(format: "%.2f (%.2f)", 100 * $0.final, 100 * $0.best) } ?? "-" }
                .joined(separator: " | ")
            s += " | " + formatDuration(runs.compactMap { $0?.seconds }.reduce(0, +)) + " |\n"
        }
        return s
    }
}

import DSG
import Foundation

/// Runs `trainer` epoch by epoch (resuming from `checkpoint`), with a progress line, one line per epoch and a
/// PNG grid of generator samples per epoch in `grids` when given; silently unless `reports`.
func runQAT(
    _ trainer: QATTrainer, test: LabeledImages, checkpoint: URL, grids: URL?, name: String, reports: Bool = true
) throws {
    let line = ProgressLine()
    let c = trainer.configuration
    let total = c.epochs * c.iterationsPerEpoch
    var remaining = RemainingTime()
    while trainer.history.count < c.epochs {
        try trainer.train(test: test, checkpoint: checkpoint, epochLimit: 1) { p in
            guard reports else { return }
            let step = p.epoch * p.iterations + p.iteration
            line.update(
                String(
                    format: "%@ epoch %d/%d  step %d/%d  generator %.4f  student %.4f%@  ETA %@", name, p.epoch + 1,
                    p.epochs, p.iteration,
                    p.iterations, p.generatorLoss, p.studentLoss, p.studentUpdates ? "" : " (warm-up)",
                    remaining.estimate(done: step, total: total)))
        }
        let epoch = trainer.history.count, report = trainer.history[epoch - 1]
        guard reports else { continue }
        line.finish()
        say(
            String(
                format: "%@ epoch %d/%d  generator loss %.4f  student loss %.4f  test accuracy %.2f%%  (%@)", name,
                epoch, c.epochs,
                report.generatorLoss, report.studentLoss, 100 * (report.testAccuracy ?? 0),
                formatDuration(report.seconds)))
        if let grids {
            try writeGrid(
                try trainer.generatedImages(count: 40, seed: 0),
                to: grids.appendingPathComponent("\(name)-epoch\(epoch).png").path)
        }
    }
}

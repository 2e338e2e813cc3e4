// The library users import. It re-exports the neural core (tensors, graphs, layers, models, optimizers), so
// `import DSG` is the only import a user needs.
@_exported import DSGCore
import DSGKernels
@_exported import DSGONNX
import Foundation

/// The namespace of swift-dsg's public entry points.
public enum DSG {
    /// The package version, for reports.
    public static let version = "0.1.0-dev"

    /// Synthesises calibration samples from `model`'s BatchNorm statistics, with no access to any data.
    ///
    /// With the default configuration this is DSG in the paper's form (the `dsg` preset, Docs/DSG.md §6.2);
    /// pass a configuration for the count, batch size, iterations, learning rate, seed, preset, loss weights,
    /// margins and enhancement.
    /// With a `checkpoint` file, the batches finished so far are saved in order from the first as each is done
    /// (one that finishes before an earlier one waits in memory for it), and a run started again with the same
    /// configuration continues after the last saved batch. With several cores and at least as many batches,
    /// one batch per core is made at once (the samples are the same either way; Docs/ARCHITECTURE.md).
    /// `progress` is called with (finished iterations, total iterations) over all batches, one call at a time but
    /// possibly from another thread; throwing from it stops the run.
    public static func generateSamples(
        from model: Model, configuration: GenerationConfiguration = GenerationConfiguration(), checkpoint: URL? = nil,
        progress: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> SampleSet {
        let optimizer = try SampleOptimizer(model: model, configuration: configuration)
        var earlier: SampleSet?
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            let saved = try SampleSet.load(from: checkpoint)
            try saved.checkContinues(
                configuration: configuration, batchSize: optimizer.batchSize, sample: optimizer.inputShape,
                file: checkpoint.lastPathComponent)
            earlier = saved
        }
        let start = Date(), sample = optimizer.inputShape, batches = optimizer.batchCount
        var images = earlier?.images.scalars ?? [], terms = earlier?.losses ?? [], timing = GenerationTiming()
        func set() -> SampleSet {
            SampleSet(
                batches: images, sample: sample, configuration: configuration, batchSize: optimizer.batchSize,
                losses: terms, seconds: (earlier?.seconds ?? 0) + Date().timeIntervalSince(start), timing: timing)
        }
        // Batches may finish out of order (BatchLanes); the set and the checkpoint take them in order.
        var waiting: [Int: BatchLanes.Batch] = [:]
        var done = terms.count * configuration.iterations
        try withoutActuallyEscaping(progress) { progress in
            let lanes = BatchLanes(batches: Array(terms.count..<batches)) { iterations in
                done += iterations
                try progress(done, batches * configuration.iterations)
            } finished: { b, batch in
                waiting[b] = batch
                var appended = false
                while let ready = waiting.removeValue(forKey: terms.count) {
                    images += ready.images.scalars
                    terms.append(ready.terms)
                    timing = timing + ready.timing
                    appended = true
                }
                if appended, let checkpoint { try set().save(to: checkpoint) }
            }
            try lanes.make(model: model, optimizer: optimizer)
        }
        return set()
    }
}

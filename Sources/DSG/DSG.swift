// The library users import. It re-exports the neural core (tensors, graphs, layers, models, optimizers), so
// `import DSG` is the only import a user needs.
@_exported import DSGCore
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
    /// With a `checkpoint` file, the samples finished so far are saved after every batch, and a run started
    /// again with the same configuration continues after the last finished batch. `progress` is called with
    /// (finished iterations, total iterations) over all batches; throwing from it stops the run.
    public static func generateSamples(
        from model: Model, configuration: GenerationConfiguration = GenerationConfiguration(), checkpoint: URL? = nil,
        progress: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> SampleSet {
        let start = Date()
        let optimizer = try SampleOptimizer(model: model, configuration: configuration)
        let batches = optimizer.batchCount
        let sample = optimizer.inputShape
        var images: [Float] = [], terms: [LossTerms] = [], earlierSeconds = 0.0, timing = GenerationTiming()
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            let saved = try SampleSet.load(from: checkpoint)
            guard saved.configuration == configuration, saved.batchSize == optimizer.batchSize else {
                throw SampleSetError.differentConfiguration(file: checkpoint.lastPathComponent)
            }
            guard Array(saved.images.shape.dimensions.dropFirst()) == sample.dimensions else {
                throw SampleSetError.differentModel(
                    file: checkpoint.lastPathComponent, expected: sample, found: saved.images.shape)
            }
            images = saved.images.scalars
            terms = saved.losses
            earlierSeconds = saved.seconds
        }
        let total = batches * configuration.iterations
        func set() -> SampleSet {
            let n = min(images.count / sample.elementCount, configuration.count)
            return SampleSet(
                images: Tensor(shape: sample.batched(n), scalars: Array(images.prefix(n * sample.elementCount))),
                configuration: configuration, batchSize: optimizer.batchSize, losses: terms,
                seconds: earlierSeconds + Date().timeIntervalSince(start), timing: timing)
        }
        for b in terms.count..<batches {
            let (batch, losses, batchTiming) = try optimizer.makeBatch(b) {
                try progress(b * configuration.iterations + $0, total)
            }
            images += batch.scalars
            terms.append(losses)
            timing = timing + batchTiming
            if let checkpoint { try set().save(to: checkpoint) }
        }
        return set()
    }
}

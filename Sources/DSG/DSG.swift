// The library users import. It re-exports the neural core (tensors, graphs, layers, models, optimizers), so
// `import DSG` is the only import a user needs.
@_exported import DSGCore

import Foundation

/// The namespace of swift-dsg's public entry points.
public enum DSG {
    /// The package version, for reports.
    public static let version = "0.1.0-dev"

    /// Synthesises calibration samples from `model`'s BatchNorm statistics, with no access to any data.
    ///
    /// With default options this is DSG in the paper's form (DSG-SPEC, "Our defaults"); pass options for the
    /// count, batch size, iterations, learning rate, seed, preset, loss weights, margins and enhancement.
    /// With a `checkpoint` file, the samples finished so far are saved after every batch, and a run started
    /// again with the same options continues after the last finished batch. `progress` is called with
    /// (finished iterations, total iterations) over all batches; throwing from it stops the run.
    public static func generateSamples(
        from model: Model, options: GenerationOptions = GenerationOptions(), checkpoint: URL? = nil,
        progress: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> SampleSet {
        let start = Date()
        let generator = try SampleGenerator(model: model, options: options)
        let batches = (options.count + generator.batchSize - 1) / generator.batchSize
        let sample = generator.inputShape
        var images: [Float] = [], terms: [LossTerms] = [], earlierSeconds = 0.0, timing = GenerationTiming()
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            let saved = try SampleSet.load(from: checkpoint)
            guard saved.options == options, saved.batchSize == generator.batchSize else {
                throw SampleSetError.differentOptions(file: checkpoint.lastPathComponent)
            }
            guard Array(saved.images.shape.dimensions.dropFirst()) == sample.dimensions else {
                throw SampleSetError.differentModel(file: checkpoint.lastPathComponent, expected: sample, found: saved.images.shape)
            }
            images = saved.images.scalars
            terms = saved.losses
            earlierSeconds = saved.seconds
        }
        let total = batches * options.iterations
        func set() -> SampleSet {
            let n = min(images.count / sample.elementCount, options.count)
            return SampleSet(
                images: Tensor(shape: sample.batched(n), scalars: Array(images.prefix(n * sample.elementCount))),
                options: options, batchSize: generator.batchSize, losses: terms,
                seconds: earlierSeconds + Date().timeIntervalSince(start), timing: timing)
        }
        for b in terms.count..<batches {
            let (batch, losses, batchTiming) = try generator.makeBatch(b) { try progress(b * options.iterations + $0, total) }
            images += batch.scalars
            terms.append(losses)
            timing = timing + batchTiming
            if let checkpoint { try set().save(to: checkpoint) }
        }
        return set()
    }
}

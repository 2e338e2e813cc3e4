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
    /// `progress` is called with (finished iterations, total iterations) over all batches.
    public static func generateSamples(
        from model: Model, options: GenerationOptions = GenerationOptions(), progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> SampleSet {
        let start = Date()
        let generator = try SampleGenerator(model: model, options: options)
        let batches = (options.count + generator.batchSize - 1) / generator.batchSize
        let total = batches * options.iterations
        var images: [Float] = [], terms: [LossTerms] = []
        for b in 0..<batches {
            let (batch, losses) = try generator.makeBatch(b) { progress(b * options.iterations + $0, total) }
            images += batch.scalars
            terms.append(losses)
        }
        let sample = generator.inputShape
        images.removeLast(images.count - options.count * sample.elementCount)
        return SampleSet(
            images: Tensor(shape: sample.batched(options.count), scalars: images), options: options,
            batchSize: generator.batchSize, losses: terms, seconds: Date().timeIntervalSince(start))
    }
}

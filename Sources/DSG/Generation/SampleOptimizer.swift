import DSGCore
import Foundation

/// Optimises batches of images against a frozen model (evaluation mode) with `DSGLoss`; Adam steps the images.
///
/// Each batch is made on its own from its index (its random numbers derive from the configuration's seed and
/// the index), so the batches of a run can be made in any order and by any process with the same result:
/// ``DSG/generateSamples(from:configuration:checkpoint:progress:)`` makes them in order, `dsg-mpi` spreads them
/// over MPI ranks.
package final class SampleOptimizer {
    let model: Model
    /// The run's configuration.
    package let configuration: GenerationConfiguration
    /// Images per batch: the configuration's batch size resolved (0 becomes the number of BatchNorm layers),
    /// at most the count.
    package let batchSize: Int
    let layerCount: Int
    let executor: GraphExecutor
    /// The model's input shape `[C, H, W]`, one image's.
    package let inputShape: Shape
    let classes: Int

    /// The number of batches the run's `count` images need (the last may be cut short when the set is put
    /// together).
    package var batchCount: Int { (configuration.count + batchSize - 1) / batchSize }

    /// An optimiser for `configuration`'s batches on `model`; throws a ``GenerationError`` for a model without
    /// BatchNorm layers or not taking one image input, or an invalid configuration.
    package init(model: Model, configuration: GenerationConfiguration) throws {
        let layers = model.batchNormLayers
        guard !layers.isEmpty else { throw GenerationError.noBatchNorm }
        try configuration.validate()
        guard model.inputs.count == 1, model.inputs[0].shape.rank == 3 else {
            throw GenerationError.invalidConfiguration("the model must take one image input [C, H, W]")
        }
        self.model = model
        self.configuration = configuration
        batchSize = min(configuration.batchSize > 0 ? configuration.batchSize : layers.count, configuration.count)
        layerCount = layers.count
        executor = try GraphExecutor(model: model, batchSize: batchSize)
        executor.inputsRequireGradient = [true]
        inputShape = model.inputs[0].shape
        classes = model.shape(of: model.outputs[0]).elementCount
    }

    /// Makes batch number `index` (its own seed derives from the configuration's seed and the index): `batchSize`
    /// images, the last iteration's loss terms and where the time went. `progress` is called with the iterations
    /// done; throwing from it stops the batch.
    package func makeBatch(_ index: Int, progress: (Int) throws -> Void) throws -> (
        images: Tensor, terms: LossTerms, timing: GenerationTiming
    ) {
        var random = SeededRandom(seed: configuration.seed &+ 0x9E37_79B9 &* UInt64(index + 1))
        let shape = inputShape.batched(batchSize)
        var x = initialImages(shape, &random)
        guard configuration.iterations > 0 else { return (x, LossTerms(), GenerationTiming()) }

        // Margins from N(0, 1) inputs: the starting batch itself when it is Gaussian (one extra forward pass, as
        // the paper says), otherwise a Gaussian batch drawn for the purpose (Docs/DSG.md §2.2).
        let margins =
            try configuration.marginQuantile.map { q in
                let noise = configuration.initialization == .gaussian ? x : random.normalTensor(shape)
                return try SlackMargins.measure(
                    model: model, images: noise, quantile: q, granularity: configuration.marginGranularity)
            } ?? SlackMargins.zero(layers: layerCount)
        var loss = try DSGLoss(model: model, batchSize: batchSize, configuration: configuration, margins: margins)
        let labels = (0..<batchSize).map { _ in Int32(random.integer(in: 0..<classes)) }
        var gradient = [Float](repeating: 0, count: shape.elementCount)
        let adam = Adam(learningRate: configuration.learningRate)
        var plateau = Plateau(patience: configuration.plateauPatience)
        var terms = LossTerms()
        var timing = GenerationTiming()
        let clock = ContinuousClock()
        var mark = clock.now
        /// Adds the time since the last mark to `phase`.
        func lap(_ phase: WritableKeyPath<GenerationTiming, Double>) {
            let now = clock.now
            timing[keyPath: phase] += (now - mark).inSeconds
            mark = now
        }

        for iteration in 0..<configuration.iterations {
            terms = LossTerms()
            mark = clock.now
            try executor.setInput(0, from: x)
            do { try executor.run(training: false) } catch {
                guard case .nonFinite(let node, _, _) = error else { throw error }
                throw GenerationError.nonFinite(
                    batch: index, iteration: iteration, term: "network (values at '\(node)')")
            }
            lap(\.forward)
            executor.zeroGradients()
            try loss.networkTerms(executor, labels: labels, into: &terms)
            lap(\.batchNormLosses)
            executor.backward(parameterGradients: false)
            lap(\.backward)
            let networkGradient = executor.gradient(of: ValueID(index: 0))
            for i in gradient.indices { gradient[i] = networkGradient[i] }

            try gradient.withUnsafeMutableBufferPointer { g in
                try x.withUnsafeBufferPointer { try loss.imageTerms($0, gradient: g, random: &random, into: &terms) }
            }
            lap(\.imageTerms)
            terms.addUp()
            if let bad = terms.firstNonFinite {
                throw GenerationError.nonFinite(batch: index, iteration: iteration, term: bad)
            }
            adam.learningRate = plateau.rate(base: configuration.learningRate, loss: terms.total)
            x.withUnsafeMutableBufferPointer {
                adam.step($0.baseAddress!, gradient: gradient, count: $0.count, slot: 0)
            }
            lap(\.optimizer)
            try progress(iteration + 1)
        }
        return (x, terms, timing)
    }

    private func initialImages(_ shape: Shape, _ random: inout SeededRandom) -> Tensor {
        switch configuration.initialization {
        case .gaussian: return random.normalTensor(shape)
        case .uniform: return random.uniformTensor(shape, 0, 1)
        case .zeroQ:
            return Tensor(
                shape: shape,
                scalars: (0..<shape.elementCount).map { _ in (Float(random.integer(in: 0..<255)) - 127.5) / 5418.75 })
        }
    }
}

import DSGCore
import Foundation

/// Why sample generation stopped.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// The model has no BatchNorm layer, so there are no statistics to generate from.
    case noBatchNorm
    /// A setting is out of range or does not fit the model (the string says which).
    case invalidConfiguration(String)
    /// A loss term (or the network's values, naming the node) became NaN or infinite at this batch and iteration
    /// (both from 0).
    case nonFinite(batch: Int, iteration: Int, term: String)

    /// What went wrong, in words, with a remedy where there is one.
    public var description: String {
        switch self {
        case .noBatchNorm:
            return
                "the model has no BatchNorm layer: DSG synthesises samples from BatchNorm statistics, so it needs them"
        case .invalidConfiguration(let reason):
            return "invalid generation configuration: \(reason)"
        case .nonFinite(let batch, let iteration, let term):
            return
                "batch \(batch), iteration \(iteration): the \(term) term became NaN or infinite; "
                + "lower the learning rate"
        }
    }
}

/// Where the time of generation went: seconds summed over all iterations of a batch.
public struct GenerationTiming: Sendable, Codable, Equatable {
    /// The network's forward pass.
    public var forward = 0.0
    /// BatchNorm statistics, their losses and gradients, and the cross-entropy.
    public var batchNormLosses = 0.0
    /// Backward through the network to the images.
    public var backward = 0.0
    /// Terms on the images themselves: input statistics, priors, correlation inhibition.
    public var imageTerms = 0.0
    /// The Adam step and the learning-rate schedule.
    public var optimizer = 0.0

    /// All phases together.
    public var total: Double { forward + batchNormLosses + backward + imageTerms + optimizer }

    static func + (a: Self, b: Self) -> Self {
        Self(
            forward: a.forward + b.forward, batchNormLosses: a.batchNormLosses + b.batchNormLosses,
            backward: a.backward + b.backward,
            imageTerms: a.imageTerms + b.imageTerms, optimizer: a.optimizer + b.optimizer)
    }
}

/// Optimises batches of images against a frozen model (evaluation mode) with `DSGLoss`; Adam steps the images.
final class SampleOptimizer {
    let model: Model
    let configuration: GenerationConfiguration
    let batchSize: Int
    let layerCount: Int
    let executor: GraphExecutor
    let inputShape: Shape
    let classes: Int

    init(model: Model, configuration: GenerationConfiguration) throws {
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

    /// Makes batch number `index` (its own seed derives from the configuration' seed and the index).
    func makeBatch(_ index: Int, progress: (Int) throws -> Void) throws -> (
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
            let d = (now - mark).components
            timing[keyPath: phase] += Double(d.seconds) + Double(d.attoseconds) * 1e-18
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

/// PyTorch's ReduceLROnPlateau (mode "min", relative threshold 1e-4, factor 0.1, floor 1e-4, no cool-down).
struct Plateau {
    let patience: Int
    private var best = Double.infinity, bad = 0, scale: Float = 1

    init(patience: Int) { self.patience = patience }

    /// The learning rate to use for the step that follows a loss of `loss`.
    mutating func rate(base: Float, loss: Double) -> Float {
        if loss < best * (1 - 1e-4) {
            best = loss
            bad = 0
        } else {
            bad += 1
            if bad > patience {
                scale *= 0.1
                bad = 0
            }
        }
        return max(base * scale, min(base, 1e-4))
    }
}

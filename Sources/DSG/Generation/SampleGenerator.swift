import DSGCore
import Foundation

/// Why sample generation stopped.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    case noBatchNorm
    case invalidOptions(String)
    case nonFinite(batch: Int, iteration: Int, term: String)

    public var description: String {
        switch self {
        case .noBatchNorm:
            return "the model has no BatchNorm layer: DSG synthesises samples from BatchNorm statistics, so it needs them"
        case .invalidOptions(let reason):
            return "invalid generation options: \(reason)"
        case .nonFinite(let batch, let iteration, let term):
            return "batch \(batch), iteration \(iteration): the \(term) term became NaN or infinite; lower the learning rate"
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

    public var total: Double { forward + batchNormLosses + backward + imageTerms + optimizer }

    static func + (a: Self, b: Self) -> Self {
        Self(forward: a.forward + b.forward, batchNormLosses: a.batchNormLosses + b.batchNormLosses, backward: a.backward + b.backward,
             imageTerms: a.imageTerms + b.imageTerms, optimizer: a.optimizer + b.optimizer)
    }
}

/// Optimises batches of images against a frozen model (evaluation mode) with `DSGLoss`; Adam steps the images.
final class SampleGenerator {
    let model: Model
    let options: GenerationOptions
    let batchSize: Int
    let layerCount: Int
    let executor: GraphExecutor
    let inputShape: Shape
    let classes: Int

    init(model: Model, options: GenerationOptions) throws {
        let layers = model.batchNormLayers
        guard !layers.isEmpty else { throw GenerationError.noBatchNorm }
        guard options.count > 0 else { throw GenerationError.invalidOptions("the sample count must be at least 1") }
        guard options.batchSize >= 0 else { throw GenerationError.invalidOptions("the batch size must not be negative") }
        guard options.iterations >= 0 else { throw GenerationError.invalidOptions("the iteration count must not be negative") }
        guard options.learningRate > 0, options.learningRate.isFinite else { throw GenerationError.invalidOptions("the learning rate must be positive") }
        if let q = options.marginQuantile, !(0...1).contains(q) {
            throw GenerationError.invalidOptions("the margin quantile must be between 0 and 1, got \(q)")
        }
        guard model.inputs.count == 1, model.inputs[0].shape.rank == 3 else {
            throw GenerationError.invalidOptions("the model must take one image input [C, H, W]")
        }
        self.model = model
        self.options = options
        batchSize = min(options.batchSize > 0 ? options.batchSize : layers.count, options.count)
        layerCount = layers.count
        executor = try GraphExecutor(model: model, batchSize: batchSize)
        executor.inputsRequireGradient = [true]
        inputShape = model.inputs[0].shape
        classes = model.shape(of: model.outputs[0]).elementCount
    }

    /// Makes batch number `index` (its own seed derives from the options' seed and the index).
    func makeBatch(_ index: Int, progress: (Int) throws -> Void) throws -> (images: Tensor, terms: LossTerms, timing: GenerationTiming) {
        var generator = SeededGenerator(seed: options.seed &+ 0x9E37_79B9 &* UInt64(index + 1))
        let shape = inputShape.batched(batchSize)
        var x = initialImages(shape, &generator)
        guard options.iterations > 0 else { return (x, LossTerms(), GenerationTiming()) }

        // Margins from N(0, 1) inputs: the starting batch itself when it is Gaussian (one extra forward pass, as
        // the paper says), otherwise a Gaussian batch drawn for the purpose (DSG-SPEC §2.3).
        let margins = try options.marginQuantile.map { q in
            let noise = options.initialization == .gaussian ? x : generator.normalTensor(shape)
            return try SlackMargins.measure(model: model, images: noise, quantile: q, granularity: options.marginGranularity)
        } ?? SlackMargins.zero(layers: layerCount)
        var loss = try DSGLoss(model: model, batchSize: batchSize, options: options, margins: margins)
        let labels = (0..<batchSize).map { _ in Int32(generator.integer(in: 0..<classes)) }
        var gradient = [Float](repeating: 0, count: shape.elementCount)
        let adam = Adam(learningRate: options.learningRate)
        var plateau = Plateau(patience: options.plateauPatience)
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

        for iteration in 0..<options.iterations {
            terms = LossTerms()
            mark = clock.now
            executor.withInput(0) { input in x.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) } }
            do { try executor.run(training: false) } catch {
                guard case .nonFinite(let node, _, _) = error else { throw error }
                throw GenerationError.nonFinite(batch: index, iteration: iteration, term: "network (values at '\(node)')")
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
                try x.withUnsafeBufferPointer { try loss.imageTerms($0, gradient: g, generator: &generator, into: &terms) }
            }
            lap(\.imageTerms)
            terms.addUp()
            if let bad = terms.firstNonFinite { throw GenerationError.nonFinite(batch: index, iteration: iteration, term: bad) }
            adam.learningRate = plateau.rate(base: options.learningRate, loss: terms.total)
            x.withUnsafeMutableBufferPointer { adam.step($0.baseAddress!, gradient: gradient, count: $0.count, slot: 0) }
            lap(\.optimizer)
            try progress(iteration + 1)
        }
        return (x, terms, timing)
    }

    private func initialImages(_ shape: Shape, _ generator: inout SeededGenerator) -> Tensor {
        switch options.initialization {
        case .gaussian: return generator.normalTensor(shape)
        case .uniform: return generator.uniformTensor(shape, 0, 1)
        case .zeroQ:
            return Tensor(shape: shape, scalars: (0..<shape.elementCount).map { _ in (Float(generator.integer(in: 0..<255)) - 127.5) / 5418.75 })
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

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

/// The final value of every loss term of one batch, for reports.
public struct LossTerms: Sendable, Codable, Equatable {
    public var batchNorm = 0.0, inputStatistics = 0.0, crossEntropy = 0.0, correlation = 0.0
    public var totalVariation = 0.0, l2 = 0.0, total = 0.0
}

/// Optimises batches of images against a frozen model (evaluation mode) with the DSG loss: BatchNorm losses
/// are injected at each BatchNorm input, cross-entropy at the logits, and the input-statistics, prior and
/// correlation terms at the images; Adam steps the images.
final class SampleGenerator {
    let model: Model
    let options: GenerationOptions
    let batchSize: Int
    let targets: [BatchNormTarget]
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
        targets = layers.map { BatchNormTarget(model: model, layer: $0) }
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
        } ?? SlackMargins.zero(layers: targets.count)
        let alignments = targets.indices.map { l in
            SlackAlignment(targetMean: targets[l].mean, targetDeviation: targets[l].deviation, meanMargin: margins.mean[l], deviationMargin: margins.deviation[l])
        }
        let layerWeights = targets.indices.map { options.enhancement.weights(layer: $0, layers: targets.count, batch: batchSize) }
        let inputTarget = SlackAlignment(
            targetMean: Array(repeating: 0, count: inputShape[0]), targetDeviation: Array(repeating: 1, count: inputShape[0]),
            meanMargin: [0], deviationMargin: [0])
        let labels = (0..<batchSize).map { _ in Int32(generator.integer(in: 0..<classes)) }

        var statistics = targets.map { $0.emptyStatistics(batch: batchSize) }
        var inputStatistics = SampleStatistics(batch: batchSize, channels: inputShape[0], plane: inputShape[1] * inputShape[2])
        var meanGradients = targets.map { [Float](repeating: 0, count: batchSize * $0.layer.channels) }
        var deviationGradients = meanGradients
        var inputMeanGradient = [Float](repeating: 0, count: batchSize * inputShape[0])
        var inputDeviationGradient = inputMeanGradient
        var gradient = [Float](repeating: 0, count: shape.elementCount)
        let sampleWeights = [Float](repeating: 1, count: batchSize)
        let adam = Adam(learningRate: options.learningRate)
        var plateau = Plateau(patience: options.plateauPatience)
        let weights = options.weights
        let correlationWeight = Double(weights.correlation) / Double(targets.count)
        let correlation = options.correlation == .off ? nil : CorrelationInhibition(batch: batchSize, dimension: inputShape.elementCount)
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
            try executor.run(training: false)
            lap(\.forward)
            executor.zeroGradients()
            for l in targets.indices {
                executor.withValue(targets[l].layer.input) { statistics[l].measure($0) }
                let value = alignments[l].evaluate(
                    statistics[l], weights: layerWeights[l], meanGradient: &meanGradients[l], deviationGradient: &deviationGradients[l])
                terms.batchNorm += Double(weights.batchNorm) * value
                if weights.batchNorm != 1 {
                    for i in meanGradients[l].indices { meanGradients[l][i] *= weights.batchNorm; deviationGradients[l][i] *= weights.batchNorm }
                }
                let target = executor.gradient(of: targets[l].layer.input)
                executor.withValue(targets[l].layer.input) { activation in
                    statistics[l].backward(activation: activation, meanGradient: meanGradients[l], deviationGradient: deviationGradients[l], into: target)
                }
            }
            if weights.crossEntropy != 0 {
                let logits = executor.gradient(of: model.outputs[0])
                terms.crossEntropy = Double(try executor.withValue(model.outputs[0]) { out in
                    try Losses.softmaxCrossEntropy(
                        logits: out.baseAddress!, labels: labels, batch: batchSize, classes: classes,
                        gradient: logits.baseAddress!, scale: weights.crossEntropy)
                })
            }
            lap(\.batchNormLosses)
            executor.backward(parameterGradients: false)
            lap(\.backward)
            let networkGradient = executor.gradient(of: ValueID(index: 0))
            for i in gradient.indices { gradient[i] = networkGradient[i] }

            try gradient.withUnsafeMutableBufferPointer { g in
                try x.withUnsafeBufferPointer { images in
                    if weights.inputStatistics != 0 {
                        inputStatistics.measure(images)
                        terms.inputStatistics = Double(weights.inputStatistics) * inputTarget.evaluate(
                            inputStatistics, weights: sampleWeights,
                            meanGradient: &inputMeanGradient, deviationGradient: &inputDeviationGradient)
                        for i in inputMeanGradient.indices {
                            inputMeanGradient[i] *= weights.inputStatistics
                            inputDeviationGradient[i] *= weights.inputStatistics
                        }
                        inputStatistics.backward(activation: images, meanGradient: inputMeanGradient, deviationGradient: inputDeviationGradient, into: g)
                    }
                    let r = options.jitter > 0 ? generator.integer(in: -options.jitter..<options.jitter) : 0
                    if weights.totalVariation != 0 {
                        terms.totalVariation = Double(weights.totalVariation) * ImagePriors.totalVariation(images, shape: shape, jitter: r, gradient: g, scale: weights.totalVariation)
                    }
                    if weights.l2 != 0 {
                        terms.l2 = Double(weights.l2) * ImagePriors.l2(images, batch: batchSize, gradient: g, scale: weights.l2)
                    }
                    if let correlation {
                        terms.correlation = correlationWeight * (try correlation.evaluate(
                            images, reference: .gaussian, generator: &generator,
                            gradient: options.correlation == .differentiable ? g : nil, scale: correlationWeight))
                    }
                }
            }
            lap(\.imageTerms)
            terms.total = terms.batchNorm + terms.inputStatistics + terms.crossEntropy + terms.correlation + terms.totalVariation + terms.l2
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

extension LossTerms {
    /// The name of the first term that is NaN or infinite.
    var firstNonFinite: String? {
        // Checked one by one: a list of the terms would allocate at every iteration.
        if !batchNorm.isFinite { return "BatchNorm alignment" }
        if !inputStatistics.isFinite { return "input statistics" }
        if !crossEntropy.isFinite { return "cross-entropy" }
        if !correlation.isFinite { return "correlation" }
        if !totalVariation.isFinite { return "total variation" }
        return l2.isFinite ? nil : "L2"
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

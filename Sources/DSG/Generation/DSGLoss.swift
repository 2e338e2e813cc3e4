import DSGCore

/// The final value of every loss term of one batch, for reports.
public struct LossTerms: Sendable, Codable, Equatable {
    /// Weighted values: BatchNorm alignment (summed over layers), input statistics, cross-entropy and
    /// correlation inhibition (its weight divided by `L`).
    public var batchNorm = 0.0, inputStatistics = 0.0, crossEntropy = 0.0, correlation = 0.0
    /// Weighted total variation and L2, and `total`, the sum of all six: the loss the learning-rate schedule sees.
    public var totalVariation = 0.0, l2 = 0.0, total = 0.0

    /// All terms zero.
    public init() {}
}

/// The DSG loss of one batch of images against a frozen network (Docs/DSG.md §2-5): slack alignment of every
/// BatchNorm layer's per-sample input statistics with layerwise enhancement, cross-entropy to target labels,
/// the images' own per-sample statistics, total-variation and L2 priors, and sample correlation inhibition.
///
/// It works in two halves around the network's backward pass, because half the terms live inside the network
/// and half on the images:
/// 1. after a forward pass, ``networkTerms(_:labels:into:)`` adds the BatchNorm and cross-entropy gradients at
///    the BatchNorm inputs and the logits of the executor, for `executor.backward()` to carry to the images;
/// 2. ``imageTerms(_:gradient:random:into:)`` adds the gradients of the terms on the images themselves.
///
/// Every buffer is made once, in `init`, so a generation loop allocates nothing.
public struct DSGLoss {
    /// The weights of the terms, from the configuration.
    public let weights: GenerationConfiguration.Weights
    /// One alignment per BatchNorm layer, in `model.batchNormLayers` order.
    public let alignments: [SlackAlignment]
    /// Per layer, the per-sample weights of layerwise sample enhancement.
    public let layerWeights: [[Float]]
    /// Images per batch `N`; every executor and buffer passed in must be for this many.
    public let batchSize: Int

    private let model: Model
    private let targets: [BatchNormTarget]
    private let inputTarget: SlackAlignment
    private let imageShape: Shape
    private let correlationMode: GenerationConfiguration.Correlation
    private let correlation: CorrelationInhibition?
    private let jitter: Int
    private var statistics: [SampleStatistics], inputStatistics: SampleStatistics
    private var meanGradients: [[Float]], deviationGradients: [[Float]]
    private var inputMeanGradient: [Float], inputDeviationGradient: [Float]
    private let sampleWeights: [Float]

    /// The loss for batches of `batchSize` images of `model`, with the weights, enhancement, correlation mode
    /// and jitter of `configuration` and the given margins (`SlackMargins.zero` for exact alignment).
    public init(model: Model, batchSize: Int, configuration: GenerationConfiguration, margins: SlackMargins)
        throws(GenerationError)
    {
        let layers = model.batchNormLayers
        guard !layers.isEmpty else { throw .noBatchNorm }
        guard batchSize > 0 else { throw .invalidConfiguration("the batch size must be at least 1") }
        guard margins.mean.count == layers.count, margins.deviation.count == layers.count else {
            throw .invalidConfiguration("\(margins.mean.count) margins for \(layers.count) BatchNorm layers")
        }
        guard model.inputs.count == 1, model.inputs[0].shape.rank == 3 else {
            throw .invalidConfiguration("the model must take one image input [C, H, W]")
        }
        self.model = model
        self.batchSize = batchSize
        weights = configuration.weights
        let targets = try layers.map { layer throws(GenerationError) in try BatchNormTarget(model: model, layer: layer)
        }
        self.targets = targets
        alignments = try targets.indices.map { l throws(GenerationError) in
            let (m, s, c) = (margins.mean[l], margins.deviation[l], targets[l].layer.channels)
            guard [1, c].contains(m.count), [1, c].contains(s.count) else {
                throw .invalidConfiguration(
                    "BatchNorm layer \(l) has \(c) channels but \(m.count) mean and \(s.count) deviation margins")
            }
            return SlackAlignment(
                targetMean: targets[l].mean, targetDeviation: targets[l].deviation, meanMargin: m, deviationMargin: s)
        }
        layerWeights = targets.indices.map {
            configuration.enhancement.weights(layer: $0, layers: layers.count, batch: batchSize)
        }
        let image = model.inputs[0].shape
        imageShape = image.batched(batchSize)
        inputTarget = SlackAlignment(
            targetMean: Array(repeating: 0, count: image[0]), targetDeviation: Array(repeating: 1, count: image[0]),
            meanMargin: [0], deviationMargin: [0])
        correlationMode = configuration.correlation
        correlation =
            configuration.correlation == .off
            ? nil : CorrelationInhibition(batch: batchSize, dimension: image.elementCount)
        jitter = configuration.jitter
        statistics = targets.map { $0.emptyStatistics(batch: batchSize) }
        guard image[1] * image[2] > 1 else { throw .noPlane(layer: "the image input") }
        inputStatistics = SampleStatistics(batch: batchSize, channels: image[0], plane: image[1] * image[2])
        meanGradients = targets.map { [Float](repeating: 0, count: batchSize * $0.layer.channels) }
        deviationGradients = meanGradients
        inputMeanGradient = [Float](repeating: 0, count: batchSize * image[0])
        inputDeviationGradient = inputMeanGradient
        sampleWeights = [Float](repeating: 1, count: batchSize)
    }

    /// The BatchNorm-alignment and cross-entropy terms of the batch `executor` has just run forward (in
    /// evaluation mode): their values go into `terms`, their gradients are added at the BatchNorm inputs and
    /// the logits, ready for `executor.backward`. `labels` are the target classes (one per sample).
    public mutating func networkTerms(_ executor: GraphExecutor, labels: [Int32], into terms: inout LossTerms) throws {
        precondition(
            executor.batchSize == batchSize && labels.count == batchSize, "DSGLoss.networkTerms: batch size mismatch.")
        for l in targets.indices {
            executor.withValue(targets[l].layer.input) { statistics[l].measure($0) }
            let value = alignments[l].evaluate(
                statistics[l], weights: layerWeights[l], meanGradient: &meanGradients[l],
                deviationGradient: &deviationGradients[l])
            terms.batchNorm += Double(weights.batchNorm) * value
            if weights.batchNorm != 1 {
                for i in meanGradients[l].indices {
                    meanGradients[l][i] *= weights.batchNorm
                    deviationGradients[l][i] *= weights.batchNorm
                }
            }
            let target = executor.gradient(of: targets[l].layer.input)
            executor.withValue(targets[l].layer.input) { activation in
                statistics[l].backward(
                    activation: activation, meanGradient: meanGradients[l], deviationGradient: deviationGradients[l],
                    into: target)
            }
        }
        if weights.crossEntropy != 0 {
            terms.crossEntropy = Double(
                try Losses.softmaxCrossEntropy(executor, labels: labels, scale: weights.crossEntropy))
        }
    }

    /// The terms on the images themselves (`[N, C, H, W]`): input statistics, total variation and L2 (both on
    /// the images rolled by a random jitter drawn from `random`), and correlation inhibition. Their values go
    /// into `terms` and their gradients are added to `gradient`.
    public mutating func imageTerms(
        _ images: UnsafeBufferPointer<Float>, gradient g: UnsafeMutableBufferPointer<Float>, random: inout SeededRandom,
        into terms: inout LossTerms
    ) throws {
        precondition(
            images.count == imageShape.elementCount && g.count == images.count, "DSGLoss.imageTerms: wrong image count."
        )
        if weights.inputStatistics != 0 {
            inputStatistics.measure(images)
            terms.inputStatistics =
                Double(weights.inputStatistics)
                * inputTarget.evaluate(
                    inputStatistics, weights: sampleWeights, meanGradient: &inputMeanGradient,
                    deviationGradient: &inputDeviationGradient)
            for i in inputMeanGradient.indices {
                inputMeanGradient[i] *= weights.inputStatistics
                inputDeviationGradient[i] *= weights.inputStatistics
            }
            inputStatistics.backward(
                activation: images, meanGradient: inputMeanGradient, deviationGradient: inputDeviationGradient, into: g)
        }
        let r = jitter > 0 ? random.integer(in: -jitter..<jitter) : 0
        if weights.totalVariation != 0 {
            terms.totalVariation =
                Double(weights.totalVariation)
                * ImagePriors.totalVariation(
                    images, shape: imageShape, jitter: r, gradient: g, gradientScale: weights.totalVariation)
        }
        if weights.l2 != 0 {
            terms.l2 =
                Double(weights.l2) * ImagePriors.l2(images, batch: batchSize, gradient: g, gradientScale: weights.l2)
        }
        if let correlation {
            // The official code divides the correlation weight by the number of BatchNorm layers.
            let weight = Double(weights.correlation) / Double(targets.count)
            terms.correlation =
                weight
                * (try correlation.evaluate(
                    images, reference: .gaussian, random: &random,
                    gradient: correlationMode == .differentiable ? g : nil, gradientScale: weight))
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

    /// Sums the terms into `total`. ``DSGLoss/networkTerms(_:labels:into:)`` adds into `batchNorm` and
    /// ``DSGLoss/imageTerms(_:gradient:random:into:)`` sets the image terms, so a caller with its own loop starts
    /// each iteration from a fresh `LossTerms()` and calls this last.
    public mutating func addUp() {
        total = batchNorm + inputStatistics + crossEntropy + correlation + totalVariation + l2
    }
}

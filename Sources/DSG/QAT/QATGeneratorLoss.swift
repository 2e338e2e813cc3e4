import DSGCore
import DSGKernels

/// The generator's loss in quantization-aware training (Docs/DSG.md §10.2), on a batch the teacher has just
/// seen: cross-entropy of the teacher's logits to the sampled labels, plus `0.1 / L` times the
/// ``BatchStatisticsAlignment`` of every BatchNorm input (`.slack` with margins for DSG, `.gdfq` without), and
/// for DSG the optional per-sample term with layerwise enhancement and correlation inhibition weighted `1 / L`.
///
/// In a data-parallel run each process evaluates its share of the batch: the cross-entropy is its part of the
/// batch mean, the BatchNorm statistics are the whole batch's (summed over the group), the correlation term
/// sees every process's images, and every process returns the whole batch's loss.
struct QATGeneratorLoss {
    private let layers: [BatchNormLayer]
    private var alignments: [BatchStatisticsAlignment]
    private let correlation: CorrelationInhibition?
    /// The per-sample term with layerwise enhancement (DSG with `layerwiseEnhancement` only).
    private var enhancement: DSGLoss?
    /// The processes sharing each batch, the batch size and this process's samples (all of them without a group).
    private let group: DataParallelGroup?, batch: Int, share: Range<Int>
    /// The group as the batch-statistics terms see it (made once: it holds a closure).
    private let sharing: BatchNorm.Sharing?
    /// With a group and the correlation term: every process's images, and the term's gradient for all of them.
    private var allImages: [Float] = [], allGradient: [Float] = []

    /// The terms for `teacher` as `configuration` asks; DSG's margins come from batches of N(0, 1) images
    /// drawn from `random` and run through `executor` (the teacher's, holding `group`'s share of the batch, or
    /// all of it without a group).
    init(
        teacher: Model, executor: GraphExecutor, configuration: QATConfiguration, random: inout SeededRandom,
        group: DataParallelGroup? = nil
    ) throws {
        layers = teacher.batchNormLayers
        let dsg = configuration.generatorLoss == .dsg, n = configuration.batchSize
        (self.group, batch) = (group, n)
        share = group?.share(of: n) ?? 0..<n
        sharing = group?.sharing(ofBatch: n)
        // Every process measures the margins alike, on whole batches.
        let margins =
            dsg
            ? try BatchStatisticsAlignment.margins(
                model: teacher,
                executor: executor.batchSize == n
                    ? executor : try GraphExecutor(model: teacher, batchSize: n, backward: false),
                quantile: configuration.marginQuantile, random: &random)
            : layers.map { _ in (mean: Float(0), variance: Float(0)) }
        alignments = zip(layers, margins).map { layer, margin in
            let (mean, variance) = teacher.runningStatistics(of: layer)
            return BatchStatisticsAlignment(
                form: dsg ? .slack : .gdfq, targetMean: mean.scalars, targetVariance: variance.scalars,
                meanMargin: [margin.mean], varianceMargin: [margin.variance])
        }
        let imageShape = teacher.inputs[0].shape
        correlation = dsg ? CorrelationInhibition(batch: n, dimension: imageShape.elementCount) : nil
        if correlation != nil && group != nil {
            allImages = Array(repeating: 0, count: n * imageShape.elementCount)
            allGradient = allImages
        }
        if dsg && configuration.layerwiseEnhancement {
            // Only the per-sample BatchNorm term, with the paper's enhancement and per-sample margins.
            var generation = GenerationConfiguration(preset: .dsg)
            generation.weights.batchNorm = 0.1 / Float(layers.count)
            (generation.weights.inputStatistics, generation.weights.crossEntropy, generation.weights.correlation) = (
                0, 0, 0
            )
            (generation.weights.totalVariation, generation.weights.l2) = (0, 0)
            generation.correlation = .off
            // Their own Gaussian batch, so turning the term on leaves the run's latents and labels as they were.
            var noise = SeededRandom(seed: configuration.seed &+ 2)
            let perSample = try SlackMargins.measure(
                model: teacher, images: noise.normalTensor(imageShape.batched(n)),
                quantile: configuration.marginQuantile,
                granularity: .perLayer)
            enhancement = try DSGLoss(model: teacher, batchSize: n, configuration: generation, margins: perSample)
        }
    }

    /// The loss of the batch `images` (`[N, C, H, W]` scalars) that `executor` has just run forward on, with
    /// `labels` the generator was asked for (this process's share of both in a data-parallel run; the loss
    /// returned is the whole batch's). Leaves the loss's gradient with respect to the images in
    /// `executor.gradient(of:)` of the input, to seed the generator's backward pass.
    mutating func evaluate(
        _ executor: GraphExecutor, images: [Float], labels: [Int32], random: inout SeededRandom
    ) throws -> Double {
        let n = executor.batchSize
        executor.zeroGradients()
        // This share's part of the batch mean; the other terms are the whole batch's on every process.
        var shareLoss = Double(
            try Losses.softmaxCrossEntropy(executor, labels: labels, scale: Float(n) / Float(batch)))
        if let group {
            withUnsafeMutablePointer(to: &shareLoss) { group.sum(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        }
        var loss = shareLoss
        let weight = 0.1 / Float(layers.count)
        for l in layers.indices {
            let target = executor.gradient(of: layers[l].input)
            let plane = target.count / (n * layers[l].channels)
            loss +=
                Double(weight)
                * executor.withValue(layers[l].input) {
                    alignments[l].evaluate(
                        $0, batch: n, plane: plane, gradient: target, gradientScale: weight, sharing: sharing)
                }
        }
        if enhancement != nil {
            var terms = LossTerms()
            try enhancement!.networkTerms(executor, labels: labels, into: &terms)
            loss += terms.batchNorm
        }
        executor.backward(parameterGradients: false)
        if let correlation {
            let scale = 1 / Double(layers.count)
            let imageGradient = executor.gradient(of: ValueID(index: 0))
            guard let group else {
                return loss
                    + scale
                    * (try images.withUnsafeBufferPointer {
                        try correlation.evaluate(
                            $0, reference: .gaussian, random: &random, gradient: imageGradient, gradientScale: scale)
                    })
            }
            // The term couples every pair of samples: each process evaluates it on the whole batch (drawing the
            // same reference) and keeps the gradient of its own samples.
            let d = images.count / n
            let counts = (0..<group.size).map { group.share(of: batch, rank: $0).count * d }
            images.withUnsafeBufferPointer { mine in
                allImages.withUnsafeMutableBufferPointer { group.gather(mine, into: $0, counts: counts) }
            }
            for i in allGradient.indices { allGradient[i] = 0 }
            loss +=
                scale
                * (try allImages.withUnsafeBufferPointer { all in
                    try allGradient.withUnsafeMutableBufferPointer {
                        try correlation.evaluate(
                            all, reference: .gaussian, random: &random, gradient: $0, gradientScale: scale)
                    }
                })
            for i in imageGradient.indices { imageGradient[i] += allGradient[share.lowerBound * d + i] }
        }
        return loss
    }
}

import DSGCore
import DSGKernels
import Foundation

/// Why diversity cannot be measured.
public enum DiversityError: Error, Equatable, CustomStringConvertible {
    /// Fewer than two images: spreads and similarities need at least two.
    case tooFewImages(Int)

    /// One line with the count.
    public var description: String {
        switch self {
        case .tooFewImages(let n): return "diversity needs at least two images, got \(n)"
        }
    }
}

/// How diverse a set of images is, seen by a model's BatchNorm layers and by the images themselves
/// (Docs/DSG.md §9). Works the same for synthetic and real images.
public struct DiversityMetrics: Sendable, Codable, Equatable {
    /// Per BatchNorm layer: the mean over channels of the standard deviation over samples of the per-sample
    /// channel means (`meanSpread`) and channel deviations (`deviationSpread`). Higher is more diverse.
    public var meanSpread: [Double]
    /// Per BatchNorm layer: the same spread for the per-sample channel deviations (see `meanSpread`).
    public var deviationSpread: [Double]
    /// Per BatchNorm layer: `mean_c |batch mean − running mean| / running deviation`, how far the whole set's
    /// statistics sit from the layer's.
    public var alignmentResidual: [Double]
    /// Mean |cosine similarity| between distinct flattened images.
    public var meanAbsoluteCosine: Double
    /// `exp(−Σ p_k log p_k)` of the Gram spectrum, `p_k = λ_k / Σλ`: the number of directions the images span.
    public var effectiveRank: Double
    /// How many images the model assigns to each class (the arg-max of its output): a set that lands in a few
    /// classes shows the network only what those classes look like.
    public var predictedClasses: [Int]

    /// Measures `images` (`[N, C, H, W]`, N ≥ 2) through `model` in evaluation mode; fewer than two images
    /// throw ``DiversityError/tooFewImages(_:)`` (a spread needs two).
    public static func measure(_ images: Tensor, model: Model, batchSize: Int = 64) throws -> DiversityMetrics {
        let n = images.shape.rank > 0 ? images.shape[0] : 0
        guard n >= 2 else { throw DiversityError.tooFewImages(n) }
        let size = images.elementCount / n
        let targets = try model.batchNormLayers.map { try BatchNormTarget(model: model, layer: $0) }
        // Per-sample statistics of every layer, and the predicted classes, in one pass.
        let classes = model.shape(of: model.outputs[0]).elementCount
        var predicted = [Int](repeating: 0, count: classes)
        let statistics = try SampleStatistics.measure(
            images, model: model, layers: targets.map(\.layer), batchSize: batchSize
        ) { executor, samples in
            executor.withValue(model.outputs[0]) { logits in
                for i in 0..<samples.count {
                    predicted[Evaluation.predictedClass(logits, sample: i, classes: classes)] += 1
                }
            }
        }
        var metrics = DiversityMetrics(
            meanSpread: [], deviationSpread: [], alignmentResidual: [], meanAbsoluteCosine: 0, effectiveRank: 0,
            predictedClasses: predicted)
        for (l, target) in targets.enumerated() {
            let c = target.layer.channels
            var spreadM = 0.0, spreadS = 0.0, residual = 0.0
            for ch in 0..<c {
                let m = (0..<n).map { Double(statistics[l].means[$0 * c + ch]) },
                    s = (0..<n).map { Double(statistics[l].deviations[$0 * c + ch]) }
                spreadM += standardDeviation(m)
                spreadS += standardDeviation(s)
                // The set's mean of a channel is the mean of the per-sample means (equal plane sizes).
                residual += abs(m.reduce(0, +) / Double(n) - Double(target.mean[ch])) / Double(target.deviation[ch])
            }
            metrics.meanSpread.append(spreadM / Double(c))
            metrics.deviationSpread.append(spreadS / Double(c))
            metrics.alignmentResidual.append(residual / Double(c))
        }
        // Cosine similarities and the Gram spectrum of the flattened images.
        var rows = [Double](repeating: 0, count: n * size)
        images.withUnsafeBufferPointer { x in
            for i in 0..<n {
                var norm = 0.0
                for k in 0..<size { norm += Double(x[i * size + k]) * Double(x[i * size + k]) }
                norm = max(norm.squareRoot(), 1e-12)
                for k in 0..<size { rows[i * size + k] = Double(x[i * size + k]) / norm }
            }
        }
        var gram = [Double](repeating: 0, count: n * n)
        CorrelationInhibition.gram(rows, n, size, into: &gram)
        var cosine = 0.0
        for i in 0..<n { for j in 0..<n where i != j { cosine += abs(gram[i * n + j]) } }
        metrics.meanAbsoluteCosine = cosine / Double(n * (n - 1))
        let spectrum = try LAPACK.symmetricEigen(gram, n: n).values.map { max($0, 0) }
        let total = spectrum.reduce(0, +)
        metrics.effectiveRank =
            total > 0 ? exp(-spectrum.reduce(0.0) { p, λ in λ > 0 ? p + (λ / total) * log(λ / total) : p }) : 0
        return metrics
    }

    private static func standardDeviation(_ xs: [Double]) -> Double {
        let mean = xs.reduce(0, +) / Double(xs.count)
        return (xs.reduce(0.0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count)).squareRoot()
    }
}

import DSGCore
import DSGKernels

/// The BatchNorm-statistics term of the QAT generator loss (Docs/DSG.md §10.2) for one BatchNorm layer, on the
/// statistics of the whole batch: per channel, the mean `m̄_c` and the biased variance `v̄_c` of the layer's
/// input over samples and positions, against the running mean `μ_c` and running variance `v_c`.
///
/// - `slack` (DSG, the paper's hinge): `Σ_c [|m̄_c − μ_c| − δ]_+² + [|v̄_c − v_c| − γ]_+²`;
/// - `gdfq` (the GDFQ baseline): `mean_c (m̄_c − μ_c)² + mean_c (v̄_c − v_c)²`, no margins.
public struct BatchStatisticsAlignment: Sendable {
    /// Which of the two losses above.
    public enum Form: String, Sendable, Codable {
        /// DSG's: squared hinges beyond the margins, summed over channels.
        case slack
        /// GDFQ's: mean squared errors over channels, no margins.
        case gdfq
    }

    /// The loss computed: DSG's slack hinge or GDFQ's mean squared error.
    public let form: Form
    /// The layer's running mean `μ` and running variance `v` (the variance, not the deviation), per channel.
    public let targetMean: [Float], targetVariance: [Float]
    /// Margins on the mean (`δ`) and on the variance (`γ`): one value for the layer or one per channel
    /// (unused by `gdfq`).
    public let meanMargin: [Float], varianceMargin: [Float]
    private var means: [Double], variances: [Double], meanGradient: [Double], varianceGradient: [Double]

    /// The term of one layer with its running statistics; margins default to zero. Mismatched counts are
    /// programmer errors (preconditions).
    public init(
        form: Form, targetMean: [Float], targetVariance: [Float], meanMargin: [Float] = [0],
        varianceMargin: [Float] = [0]
    ) {
        let c = targetMean.count
        precondition(targetVariance.count == c, "BatchStatisticsAlignment: one target variance per channel.")
        precondition(
            [1, c].contains(meanMargin.count) && [1, c].contains(varianceMargin.count),
            "BatchStatisticsAlignment: margins are per layer or per channel.")
        (self.form, self.targetMean, self.targetVariance, self.meanMargin, self.varianceMargin) = (
            form, targetMean, targetVariance, meanMargin, varianceMargin
        )
        means = Array(repeating: 0, count: c)
        variances = means
        meanGradient = means
        varianceGradient = means
    }

    /// The term for `activation` (`[N, C, plane]` values); adds `gradientScale * dL/dA` into `gradient`. With
    /// `sharing`, `activation` is one share of a batch spread over processes, and the statistics (so the value,
    /// which every share returns alike) are the whole batch's.
    public mutating func evaluate(
        _ activation: UnsafeBufferPointer<Float>, batch n: Int, plane: Int, gradient: UnsafeMutableBufferPointer<Float>,
        gradientScale: Float, sharing: BatchNorm.Sharing? = nil
    ) -> Double {
        let c = targetMean.count
        precondition(
            activation.count == n * c * plane && gradient.count == activation.count,
            "BatchStatisticsAlignment: wrong activation size.")
        let count = Double((sharing?.samples ?? n) * plane)
        Self.batchStatistics(
            activation, batch: n, channels: c, plane: plane, means: &means, variances: &variances, sharing: sharing)
        var value = 0.0
        for ch in 0..<c {
            let dm = means[ch] - Double(targetMean[ch]), dv = variances[ch] - Double(targetVariance[ch])
            switch form {
            case .gdfq:
                value += (dm * dm + dv * dv) / Double(c)
                meanGradient[ch] = 2 * dm / Double(c)
                varianceGradient[ch] = 2 * dv / Double(c)
            case .slack:
                let (vm, gm) = SlackAlignment.hinge(
                    Float(means[ch]), targetMean[ch], meanMargin[meanMargin.count == 1 ? 0 : ch])
                let (vv, gv) = SlackAlignment.hinge(
                    Float(variances[ch]), targetVariance[ch], varianceMargin[varianceMargin.count == 1 ? 0 : ch])
                value += vm + vv
                meanGradient[ch] = gm
                varianceGradient[ch] = gv
            }
        }
        // dm̄/dA = 1 / (N·P); dv̄/dA = 2 (A − m̄) / (N·P).
        for s in 0..<n {
            for ch in 0..<c where meanGradient[ch] != 0 || varianceGradient[ch] != 0 {
                let a = Float(Double(gradientScale) * meanGradient[ch] / count),
                    b = Float(Double(gradientScale) * 2 * varianceGradient[ch] / count)
                let m = Float(means[ch])
                let row = activation.baseAddress! + (s * c + ch) * plane,
                    out = gradient.baseAddress! + (s * c + ch) * plane
                for k in 0..<plane { out[k] += a + b * (row[k] - m) }
            }
        }
        return value
    }

    /// Per channel, the mean and the biased variance over samples and positions of `activation`
    /// (`[N, C, plane]`), in Double, written into `means` and `variances` (C values each); over the whole batch
    /// when `activation` is one share of it (`sharing`).
    static func batchStatistics(
        _ activation: UnsafeBufferPointer<Float>, batch n: Int, channels c: Int, plane: Int, means: inout [Double],
        variances: inout [Double], sharing: BatchNorm.Sharing? = nil
    ) {
        let count = Double((sharing?.samples ?? n) * plane)
        for ch in 0..<c {
            var sum = 0.0
            for s in 0..<n { sum += Reductions.sum(activation.baseAddress! + (s * c + ch) * plane, count: plane) }
            means[ch] = sum
        }
        if let sharing { means.withUnsafeMutableBufferPointer { sharing.sum($0) } }
        for ch in 0..<c {
            means[ch] /= count
            var squares = 0.0
            for s in 0..<n {
                squares += Reductions.squaredDeviations(
                    activation.baseAddress! + (s * c + ch) * plane, count: plane, mean: means[ch])
            }
            variances[ch] = squares
        }
        if let sharing { variances.withUnsafeMutableBufferPointer { sharing.sum($0) } }
        for ch in 0..<c { variances[ch] /= count }
    }

    /// The margins of the DSG form for every BatchNorm layer of `model` (Docs/DSG.md §10.3): per layer, the
    /// `quantile` of |batch mean − running mean| and of |batch variance − running variance| over all channels
    /// of four batches of N(0, 1) images drawn from `random`, run through `executor` (on `model`, any batch size).
    static func margins(
        model: Model, executor: GraphExecutor, quantile: Double, random: inout SeededRandom
    ) throws -> [(mean: Float, variance: Float)] {
        let layers = model.batchNormLayers, n = executor.batchSize
        var meanGaps = layers.map { _ in [Double]() }, varianceGaps = meanGaps
        for _ in 0..<4 {
            try executor.forward([random.normalTensor(model.inputs[0].shape.batched(n))], training: false)
            for (l, layer) in layers.enumerated() {
                let (mean, variance) = model.runningStatistics(of: layer)
                let c = layer.channels
                var means = [Double](repeating: 0, count: c), variances = means
                executor.withValue(layer.input) {
                    batchStatistics(
                        $0, batch: n, channels: c, plane: $0.count / (n * c), means: &means, variances: &variances)
                }
                for ch in 0..<c {
                    meanGaps[l].append(abs(means[ch] - Double(mean.scalars[ch])))
                    varianceGaps[l].append(abs(variances[ch] - Double(variance.scalars[ch])))
                }
            }
        }
        return layers.indices.map {
            (
                Float(SlackMargins.quantile(meanGaps[$0], quantile)),
                Float(SlackMargins.quantile(varianceGaps[$0], quantile))
            )
        }
    }
}

import DSGCore

/// Slack distribution alignment (Docs/DSG.md §2) for one BatchNorm layer: per sample and channel, the squared
/// dead-zone hinge of the distance between the sample's statistic and the BatchNorm statistic,
///
/// ```
/// Σ_{n,c} w_n ( [|m_nc − μ_c| − δ_c]_+² + [|s_nc − σ_c| − γ_c]_+² ) / N
/// ```
///
/// with `σ = sqrt(running_var + 1e-6)`. Margins of zero give ZeroQ's loss; `w_n` carries layerwise sample
/// enhancement (Docs/DSG.md §3).
public struct SlackAlignment: Sendable {
    /// Running mean `μ` and running standard deviation `σ` per channel.
    public let targetMean: [Float], targetDeviation: [Float]
    /// Margins `δ` (mean) and `γ` (deviation): one value for the layer, or one per channel.
    public let meanMargin: [Float], deviationMargin: [Float]

    /// An alignment with the targets of one layer; the deviations must match the means in count, and each margin
    /// array holds one value or one per channel (preconditions).
    public init(targetMean: [Float], targetDeviation: [Float], meanMargin: [Float], deviationMargin: [Float]) {
        let c = targetMean.count
        precondition(targetDeviation.count == c, "SlackAlignment: one target deviation per channel.")
        precondition(
            [1, c].contains(meanMargin.count) && [1, c].contains(deviationMargin.count),
            "SlackAlignment: margins are per layer or per channel.")
        (self.targetMean, self.targetDeviation, self.meanMargin, self.deviationMargin) = (
            targetMean, targetDeviation, meanMargin, deviationMargin
        )
    }

    /// The loss over `statistics` with per-sample weights `weights` (`N` values; all 1 without enhancement).
    /// Writes `dL/dm` and `dL/ds` (one per sample and channel) into `meanGradient` and `deviationGradient`,
    /// which must already hold `N * C` values (so a generation loop reuses them).
    public func evaluate(
        _ statistics: SampleStatistics, weights: [Float], meanGradient: inout [Float], deviationGradient: inout [Float]
    ) -> Double {
        let (n, c) = (statistics.batch, statistics.channels)
        precondition(c == targetMean.count && weights.count == n, "SlackAlignment.evaluate: shapes do not match.")
        precondition(
            meanGradient.count == n * c && deviationGradient.count == n * c,
            "SlackAlignment.evaluate: gradients need N * C values.")
        var value = 0.0
        for sample in 0..<n {
            let w = Double(weights[sample]) / Double(n)
            for channel in 0..<c {
                let i = sample * c + channel
                let (vm, gm) = Self.hinge(
                    statistics.means[i], targetMean[channel], meanMargin[meanMargin.count == 1 ? 0 : channel])
                let (vs, gs) = Self.hinge(
                    statistics.deviations[i], targetDeviation[channel],
                    deviationMargin[deviationMargin.count == 1 ? 0 : channel])
                value += w * (vm + vs)
                meanGradient[i] = Float(w * gm)
                deviationGradient[i] = Float(w * gs)
            }
        }
        return value
    }

    /// `[|x − t| − margin]_+²` and its derivative in `x`.
    @inline(__always)
    static func hinge(_ x: Float, _ t: Float, _ margin: Float) -> (Double, Double) {
        let d = Double(x) - Double(t)
        let excess = abs(d) - Double(abs(margin))
        guard excess > 0 else { return (0, 0) }
        return (excess * excess, 2 * excess * (d > 0 ? 1 : -1))
    }
}

/// Which BatchNorm layer each sample emphasises (layerwise sample enhancement, Docs/DSG.md §3): the weight of
/// sample `n`'s loss at layer `l`.
public enum LayerEnhancement: Sendable, Equatable, Codable {
    /// Every weight 1 (ZeroQ, and SDA alone).
    case none
    /// The paper: weight `factor` (2) on layer `n mod L` for sample `n`, every sample covered.
    case paper(factor: Float)
    /// The official PTQ code: the hinge doubled (weight 4 on its square) where `n == l`, for the first
    /// `min(N, layerCount)` samples only (`layerCount` is 20 there, ResNet-18's BatchNorm count).
    case code(layerCount: Int)

    /// The per-sample weights of layer `layer` of `layers`, for a batch of `batch`.
    public func weights(layer: Int, layers: Int, batch: Int) -> [Float] {
        (0..<batch).map { n in
            switch self {
            case .none: return 1
            case .paper(let factor): return n % layers == layer ? factor : 1
            case .code(let layerCount): return n == layer && n < min(batch, layerCount) ? 4 : 1
            }
        }
    }
}

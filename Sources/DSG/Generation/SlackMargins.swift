import DSGCore

/// The margins of slack distribution alignment, one pair per BatchNorm layer (Docs/DSG.md §2.2): how far a
/// sample's per-channel mean (`mean`) and standard deviation (`deviation`) may stray from the BatchNorm
/// statistics at no cost. Each entry holds one value for the layer or one per channel.
public struct SlackMargins: Sendable, Equatable, Codable {
    /// Per BatchNorm layer, the margins `δ` on the per-sample channel means: one value, or one per channel.
    public var mean: [[Float]]
    /// Per BatchNorm layer, the margins `γ` on the per-sample channel deviations: one value, or one per channel.
    public var deviation: [[Float]]

    /// Margins as given; ``DSGLoss`` checks them against the model (one entry per layer, 1 or `C` values each).
    public init(mean: [[Float]], deviation: [[Float]]) { (self.mean, self.deviation) = (mean, deviation) }

    /// Margins of zero: ZeroQ's exact alignment.
    public static func zero(layers: Int) -> SlackMargins {
        SlackMargins(mean: Array(repeating: [0], count: layers), deviation: Array(repeating: [0], count: layers))
    }

    /// Per layer, or per layer and channel.
    public enum Granularity: String, Sendable, Codable, CaseIterable {
        /// One margin pair per layer, the quantile over all samples and channels (the default).
        case perLayer
        /// One margin pair per channel, the quantile over samples.
        case perChannel
    }

    /// Data-free margins: the `quantile` of |per-sample statistic of N(0, 1) inputs − BatchNorm statistic|,
    /// over all samples and channels of a layer (`perLayer`) or over samples for each channel (`perChannel`),
    /// with linear interpolation between order statistics (NumPy's default).
    ///
    /// - Parameter images: the N(0, 1) batch `[N, C, H, W]` in the model's input space (DSG uses its initial
    ///   batch, so the margins cost one forward pass).
    public static func measure(
        model: Model, images: Tensor, quantile: Double, granularity: Granularity
    ) throws -> SlackMargins {
        precondition(quantile >= 0 && quantile <= 1, "SlackMargins.measure: the quantile is a fraction in 0...1.")
        let executor = try GraphExecutor(model: model, batchSize: images.shape[0], backward: false)
        try executor.forward([images], training: false)
        var margins = SlackMargins(mean: [], deviation: [])
        for layer in model.batchNormLayers {
            let stats = try BatchNormTarget(model: model, layer: layer)
            var statistics = stats.emptyStatistics(batch: executor.batchSize)
            executor.withValue(layer.input) { statistics.measure($0) }
            let (n, c) = (statistics.batch, statistics.channels)
            var dm = [[Double]](repeating: [], count: c), ds = [[Double]](repeating: [], count: c)
            for i in 0..<n {
                for ch in 0..<c {
                    dm[ch].append(abs(Double(statistics.means[i * c + ch]) - Double(stats.mean[ch])))
                    ds[ch].append(abs(Double(statistics.deviations[i * c + ch]) - Double(stats.deviation[ch])))
                }
            }
            switch granularity {
            case .perLayer:
                margins.mean.append([Float(Self.quantile(dm.flatMap { $0 }, quantile))])
                margins.deviation.append([Float(Self.quantile(ds.flatMap { $0 }, quantile))])
            case .perChannel:
                margins.mean.append(dm.map { Float(Self.quantile($0, quantile)) })
                margins.deviation.append(ds.map { Float(Self.quantile($0, quantile)) })
            }
        }
        return margins
    }

    /// The `q`-quantile of `values` by linear interpolation between order statistics.
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        guard let last = sorted.indices.last else { return 0 }
        let position = q * Double(last)
        let lower = Int(position.rounded(.down)), upper = min(lower + 1, last)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }
}

import DSGCore

/// The statistics a BatchNorm layer expects of its input: the running mean and `sqrt(running_var + 1e-6)`.
public struct BatchNormTarget: Sendable {
    /// The BatchNorm layer these statistics belong to.
    public let layer: BatchNormLayer
    /// The running mean `μ`, one per channel.
    public let mean: [Float]
    /// `σ = sqrt(running_var + 1e-6)`, one per channel (1e-6 whatever the layer's own epsilon, as the official code).
    public let deviation: [Float]
    /// Per-sample plane size of the layer's input.
    public let plane: Int

    /// Reads `layer`'s running statistics from `model` as they are now; throws ``GenerationError/noPlane(layer:)``
    /// when the layer's input has fewer than two values per channel and sample.
    public init(model: Model, layer: BatchNormLayer) throws(GenerationError) {
        guard model.shape(of: layer.input).elementCount / layer.channels > 1 else { throw .noPlane(layer: layer.name) }
        let (mean, variance) = model.runningStatistics(of: layer)
        self.layer = layer
        self.mean = mean.scalars
        deviation = variance.scalars.map { Float((Double($0) + SampleStatistics.epsilon).squareRoot()) }
        plane = model.shape(of: layer.input).elementCount / layer.channels
    }

    /// Zeroed per-sample statistics of this layer's input for a batch of `batch`, ready for
    /// ``SampleStatistics/measure(_:firstSample:)``.
    public func emptyStatistics(batch: Int) -> SampleStatistics {
        SampleStatistics(batch: batch, channels: layer.channels, plane: plane)
    }
}

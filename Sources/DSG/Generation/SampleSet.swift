import DSGCore

/// Synthetic samples with the options, batch size, final loss terms and wall time that made them.
public struct SampleSet: Sendable {
    /// `[count, C, H, W]` in the model's normalised input space.
    public let images: Tensor
    public let options: GenerationOptions
    public let batchSize: Int
    /// The last iteration's loss terms of every batch.
    public let losses: [LossTerms]
    public let seconds: Double

    public var count: Int { images.shape[0] }
}

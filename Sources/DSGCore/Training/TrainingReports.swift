/// What one finished epoch measured.
public struct EpochReport: Codable, Sendable, Equatable {
    /// The epoch's index, counted from 0.
    public let epoch: Int
    /// Mean cross-entropy over the epoch's training batches (augmented, training mode).
    public let trainLoss: Double
    /// Fraction (0 to 1) of the epoch's training images classified correctly during their step, in training mode.
    public let trainAccuracy: Double
    /// Top-1 fraction (0 to 1) on the test set after the epoch, in evaluation mode.
    public let testAccuracy: Double
    /// Wall-clock time of the epoch, test evaluation included.
    public let seconds: Double
}

/// Progress within an epoch, for progress lines.
public struct TrainingProgress: Sendable {
    /// The current epoch (from 0) and the run's total.
    public let epoch: Int, epochs: Int
    /// Steps done in this epoch (from 1) and the steps of a whole epoch.
    public let step: Int, stepsPerEpoch: Int
    /// Mean training loss over this epoch's steps so far.
    public let loss: Double
    /// Training images per second since this call of ``ClassifierTrainer/run(checkpoint:epochLimit:progress:)`` began.
    public let imagesPerSecond: Double
    /// Seconds until the whole run ends, extrapolated from this run's pace.
    public let secondsRemaining: Double
}

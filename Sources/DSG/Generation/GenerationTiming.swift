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

    /// All phases together.
    public var total: Double { forward + batchNormLosses + backward + imageTerms + optimizer }

    /// No time in any phase.
    public init() {}

    static func + (a: Self, b: Self) -> Self {
        var sum = a
        sum.forward += b.forward
        sum.batchNormLosses += b.batchNormLosses
        sum.backward += b.backward
        sum.imageTerms += b.imageTerms
        sum.optimizer += b.optimizer
        return sum
    }
}

/// One batch of a generation run spread over processes: which process (MPI rank) made it and how long it took,
/// for the run's report.
public struct BatchTime: Sendable, Codable, Equatable {
    /// The batch's index in the run.
    public let batch: Int
    /// The rank that made it (or found it finished).
    public let rank: Int
    /// The seconds its optimisation took (the sum of its phases), in the run that made it.
    public let seconds: Double
    /// Whether it was finished by an earlier, interrupted run and kept.
    public let kept: Bool

    /// The record of batch `batch`, made by `rank` in `seconds`, or kept from an earlier run.
    public init(batch: Int, rank: Int, seconds: Double, kept: Bool) {
        (self.batch, self.rank, self.seconds, self.kept) = (batch, rank, seconds, kept)
    }
}

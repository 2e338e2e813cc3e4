import DSGCore
import Foundation

/// One finished epoch of quantization-aware training.
public struct QATEpoch: Sendable, Codable, Equatable {
    /// Mean losses over the epoch's iterations.
    public var generatorLoss: Double, studentLoss: Double
    /// The quantized student's top-1 on the test images given to `train`, if any.
    public var testAccuracy: Double?
    /// Wall-clock time of the epoch, the test evaluation included.
    public var seconds: Double
}

/// Where the time of QAT iterations went, in seconds summed over the iterations run by this trainer.
public struct QATTiming: Sendable, Equatable {
    /// The generator's forward pass.
    public var generatorForward = 0.0
    /// The teacher's forward pass, the generator's loss terms and the backward pass to the images.
    public var teacher = 0.0
    /// The generator's backward pass and its Adam step.
    public var generatorBackward = 0.0
    /// The student's weight quantization, forward, distillation loss, backward and SGD step.
    public var student = 0.0
    /// Iterations timed.
    public var iterations = 0

    /// All phases together.
    public var total: Double { generatorForward + teacher + generatorBackward + student }
}

/// Where a run is, for progress lines.
public struct QATProgress: Sendable {
    /// The current epoch (from 0) and the run's total; iterations done in this epoch (from 1) and per epoch.
    public var epoch: Int, epochs: Int, iteration: Int, iterations: Int
    /// Mean losses over this epoch's iterations so far.
    public var generatorLoss: Double, studentLoss: Double
    /// Whether the student is being updated yet (false during warm-up).
    public var studentUpdates: Bool
}

/// Reconstruction PTQ (Docs/DSG.md §8.6): after nearest-rounding calibration, learn each layer's or block's weight
/// rounding (and with BRECQ and QDrop the activation step sizes) so that its outputs on the calibration samples
/// match the float model's.
public struct ReconstructionSettings: Sendable, Equatable, Codable {
    /// What is reconstructed as one unit and what is learned.
    public enum Method: String, Sendable, Codable, CaseIterable {
        /// AdaRound (Nagel et al. 2020): one convolution or linear layer at a time, its output before BatchNorm;
        /// only the weights' rounding is learned.
        case adaRound
        /// BRECQ (Li et al. 2021): one block at a time (a residual block, the stem, the classifier), its output after
        /// the block's activation quantizer; the rounding and the step size of every activation quantizer in the
        /// block are learned together.
        case brecq
        /// QDrop (Wei et al. 2022): BRECQ's blocks, with each activation quantizer's output replaced by its float
        /// value with probability ``ReconstructionSettings/dropProbability``, element-wise, while learning.
        case qDrop
    }

    /// AdaRound, BRECQ or QDrop.
    public var method: Method
    /// The rounding's schedule: steps per layer or block, the regulariser's annealing, Adam, the batch.
    public var rounding = AdaRoundSchedule()
    /// Adam's step size on the activation step sizes (BRECQ and QDrop), annealed to 0 by a cosine over the
    /// steps (QDrop's 4e-5).
    public var stepLearningRate: Float = 4e-5
    /// QDrop's probability that an element keeps its float value (0.5).
    public var dropProbability: Float = 0.5

    /// `method` with the defaults above.
    public init(method: Method) { self.method = method }

    /// Whether activation step sizes are learned.
    var learnsSteps: Bool { method != .adaRound }

    /// The drop probability in effect: QDrop's, 0 for the others.
    var drop: Float { method == .qDrop ? dropProbability : 0 }

    /// Throws for settings reconstruction cannot run with.
    public func validate() throws(QuantizationError) {
        try rounding.validate()
        guard stepLearningRate >= 0, stepLearningRate.isFinite, (0..<1).contains(dropProbability) else {
            throw .invalidReconstruction("the step learning rate must be at least 0 and the drop probability in [0, 1)")
        }
    }
}

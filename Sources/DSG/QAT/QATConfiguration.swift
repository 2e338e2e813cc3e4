import DSGCore

/// Everything that decides a quantization-aware training run (Docs/DSG.md §10), with CPU-sized defaults.
public struct QATConfiguration: Sendable, Codable, Equatable {
    /// The generator's loss.
    public enum GeneratorLoss: String, Sendable, Codable, CaseIterable {
        /// DSG (Docs/DSG.md §10.2): cross-entropy + 0.1 × the mean over layers of the slack batch-statistics
        /// alignment (margins from Gaussian inputs) + correlation inhibition / L.
        case dsg
        /// GDFQ, the baseline: cross-entropy + 0.1 × the mean over layers of the mean squared error of batch
        /// statistics, nothing else.
        case gdfq
    }

    /// What one batch contributes to the moving average of an activation's range while ranges are tracked.
    public enum ActivationRange: String, Sendable, Codable, CaseIterable {
        /// The batch's minimum and maximum (Docs/DSG.md §10.5, the reference code).
        case batchExtremes
        /// The mean over the batch's samples of each sample's minimum and maximum: the per-batch estimate of
        /// PTQ's `meanSampleExtremes` calibration, which ignores the few samples that reach far beyond the rest.
        case meanSampleExtremes
    }

    /// Bits of every convolution and linear weight, the first and last layers included (2 to 8).
    public var weightBits = 4
    /// Bits of the activation after every ReLU, ReLU6 and clip (2 to 8).
    public var activationBits = 4
    /// DSG's loss (the default) or GDFQ's, the baseline.
    public var generatorLoss: GeneratorLoss = .dsg
    /// Epochs in the whole run (20, sized for a CPU; DSG's ImageNet configuration runs 400).
    public var epochs = 20
    /// Generator and student steps per epoch (100).
    public var iterationsPerEpoch = 100
    /// Generated images per iteration, for generator, teacher and student alike (64; at least 2 for batch
    /// statistics).
    public var batchSize = 64
    /// Epochs at the start in which only the generator trains (the student is not updated).
    public var warmupEpochs = 4
    /// Epochs at the start in which activation ranges follow an exponential moving average (β = 0.9) of each
    /// batch's extremes (as `activationRange` estimates them); they are frozen afterwards.
    public var calibrationEpochs = 4
    /// How each batch estimates an activation's range while ranges are tracked (the batch's extremes by default).
    public var activationRange: ActivationRange = .batchExtremes
    /// Adam (β 0.5, 0.999) on the generator.
    public var generatorLearningRate: Float = 1e-3
    /// SGD with Nesterov momentum 0.9 and weight decay 1e-4 on the student.
    public var studentLearningRate: Float = 1e-4
    /// Epochs at which both learning rates are multiplied by 0.1.
    public var milestones: [Int] = []
    /// The distillation temperature T (the term is `α T² KL`, KL averaged over all logits as PyTorch's `mean`).
    public var temperature: Float = 20
    /// `α`, the weight of the distillation term (the cross-entropy to the labels has weight 1).
    public var distillationWeight: Float = 1
    /// Margin quantile of the DSG loss (per layer, from batches of Gaussian inputs).
    public var marginQuantile = 0.9
    /// DSG only: add a per-sample slack-alignment term with layerwise sample enhancement (Docs/DSG.md §10.6:
    /// sample n counts layer n mod L twice), weighted like the batch term (0.1 / L).
    public var layerwiseEnhancement = false
    /// Size `d` of the generator's Gaussian latent vector (100, GDFQ's).
    public var latentDimension = 100
    /// How the generator takes the label: GDFQ's embedding (small images) or class-conditional BatchNorm (its
    /// ImageNet generator).
    public var conditioning: Generator.Conditioning = .embedding
    /// Seeds the generator's initialisation; the run's latents, labels and the margins' noise use seeds derived
    /// from it.
    public var seed: UInt64 = 0

    /// The defaults of Docs/DSG.md §10.7 at the given bit-widths and generator loss.
    public init(weightBits: Int = 4, activationBits: Int = 4, generatorLoss: GeneratorLoss = .dsg) {
        (self.weightBits, self.activationBits, self.generatorLoss) = (weightBits, activationBits, generatorLoss)
    }

    /// "W4A4".
    public var label: String { "W\(weightBits)A\(activationBits)" }

    /// The learning-rate factor of epoch `epoch` (0-based): 0.1 for every milestone passed.
    func decay(epoch: Int) -> Float {
        milestones.filter { epoch + 1 > $0 }.reduce(1) { r, _ in r * 0.1 }
    }

    /// Checks every setting: bit-widths 2 to 8, positive counts and rates, a batch of at least two.
    public func validate() throws(QATError) {
        do {
            try UniformQuantizer.validate(weightBits, "weight")
            try UniformQuantizer.validate(activationBits, "activation")
        } catch { throw .invalidConfiguration(error.description) }
        guard epochs >= 1, iterationsPerEpoch >= 1 else {
            throw .invalidConfiguration("epochs and iterations per epoch must be at least 1")
        }
        guard batchSize >= 2 else {
            throw .invalidConfiguration("the batch size must be at least 2 (batch statistics)")
        }
        guard warmupEpochs >= 0, calibrationEpochs >= 0 else {
            throw .invalidConfiguration("warm-up and calibration epochs must not be negative")
        }
        guard generatorLearningRate > 0, studentLearningRate >= 0, temperature > 0 else {
            throw .invalidConfiguration(
                "the generator's learning rate and the temperature must be positive, the student's not negative")
        }
        guard latentDimension >= 1, distillationWeight >= 0, distillationWeight.isFinite else {
            throw .invalidConfiguration("the latent dimension must be at least 1, the distillation weight not negative")
        }
        guard (0...1).contains(marginQuantile) else {
            throw .invalidConfiguration("the margin quantile must be between 0 and 1")
        }
    }
}

extension QATConfiguration {
    /// Every setting missing from the encoded form keeps its default, so that a checkpoint written before a
    /// setting existed (which ran with the default, as every new setting's default is the old behaviour) still
    /// resumes.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func read<T: Decodable>(_ key: CodingKeys, into value: inout T) throws {
            if let decoded = try c.decodeIfPresent(T.self, forKey: key) { value = decoded }
        }
        try read(.weightBits, into: &weightBits)
        try read(.activationBits, into: &activationBits)
        try read(.generatorLoss, into: &generatorLoss)
        try read(.epochs, into: &epochs)
        try read(.iterationsPerEpoch, into: &iterationsPerEpoch)
        try read(.batchSize, into: &batchSize)
        try read(.warmupEpochs, into: &warmupEpochs)
        try read(.calibrationEpochs, into: &calibrationEpochs)
        try read(.activationRange, into: &activationRange)
        try read(.generatorLearningRate, into: &generatorLearningRate)
        try read(.studentLearningRate, into: &studentLearningRate)
        try read(.milestones, into: &milestones)
        try read(.temperature, into: &temperature)
        try read(.distillationWeight, into: &distillationWeight)
        try read(.marginQuantile, into: &marginQuantile)
        try read(.layerwiseEnhancement, into: &layerwiseEnhancement)
        try read(.latentDimension, into: &latentDimension)
        try read(.conditioning, into: &conditioning)
        try read(.seed, into: &seed)
    }
}

/// Why quantization-aware training stopped.
public enum QATError: Error, Equatable, CustomStringConvertible {
    /// The teacher has no BatchNorm layer, so the generator has no statistics to learn from.
    case noBatchNorm
    /// A setting is out of range or does not fit the teacher (the string says which).
    case invalidConfiguration(String)
    /// The generator's or the student's loss (named), or a value inside its network, became NaN or infinite at this
    /// epoch and iteration (from 0; the description counts from 1).
    case nonFinite(epoch: Int, iteration: Int, loss: String)
    /// The checkpoint belongs to another run (another teacher, setting or format); `reason` names what differs.
    case checkpointMismatch(file: String, reason: String)

    /// What went wrong, in words, with a remedy where there is one.
    public var description: String {
        switch self {
        case .noBatchNorm:
            return
                "the teacher has no BatchNorm layer: the generator learns from BatchNorm statistics, so it needs them"
        case .invalidConfiguration(let reason):
            return "invalid QAT configuration: \(reason)"
        case .nonFinite(let epoch, let iteration, let loss):
            return
                "epoch \(epoch + 1), iteration \(iteration + 1): the \(loss) loss became NaN or infinite; "
                + "lower its learning rate"
        case .checkpointMismatch(let file, let reason):
            return
                "\(file): this checkpoint belongs to another run (\(reason)); "
                + "use another checkpoint file or the same settings"
        }
    }
}

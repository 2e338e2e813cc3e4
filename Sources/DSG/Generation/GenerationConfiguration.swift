import DSGCore

/// Everything that decides how synthetic samples are made. Start from a preset (`GenerationConfiguration(preset:)`)
/// and change what you need; the configuration travels with the samples it made.
public struct GenerationConfiguration: Sendable, Codable, Equatable {
    /// The methods Docs/DSG.md §6.2 compares, each one option away from the others.
    public enum Preset: String, Sendable, Codable, CaseIterable {
        /// N(0, 1) noise, not optimised: the floor every method must beat.
        case gaussian
        /// ZeroQ (Docs/DSG.md §7): exact BatchNorm-statistics alignment from a tiny uniform start.
        case zeroQ
        /// The CVPR version of DSG (Docs/DSG.md §7): ZeroQ with slack alignment and layerwise enhancement.
        case dsgCVPR
        /// DSG in the paper's form (our default): slack margins from Gaussian inputs, enhancement ×2 over every
        /// sample, differentiable correlation inhibition, plus the official code's cross-entropy and priors.
        case dsg
        /// DSG as the official code runs it (Docs/DSG.md §6.2): uniform start, enhancement ×4 on the first 20
        /// samples, correlation value logged but without gradient.
        case dsgCode
    }

    /// How the images of a batch start, before any optimisation (Docs/DSG.md §6.2).
    public enum Initialization: String, Sendable, Codable {
        /// N(0, 1) per pixel in the normalised input space.
        case gaussian
        /// U[0, 1) per pixel (the official code's `torch.rand`).
        case uniform
        /// ZeroQ's `(randint(0, 255) − 127.5) / 5418.75`: uniform steps within ±0.0236.
        case zeroQ
    }

    /// How sample correlation inhibition takes part.
    public enum Correlation: String, Sendable, Codable {
        /// Not computed: no value, no gradient (ZeroQ and the CVPR version).
        case off
        /// Computed and reported, no gradient (what the official code effectively does).
        case valueOnly
        /// Magnitude term with its gradient through the eigenvalues.
        case differentiable
    }

    /// Weights of the loss terms.
    public struct Weights: Sendable, Codable, Equatable {
        /// BatchNorm-statistics alignment (summed over layers).
        public var batchNorm: Float = 1
        /// Per-sample mean 0 and deviation 1 of the input image channels.
        public var inputStatistics: Float = 1
        /// Cross-entropy to random target labels.
        public var crossEntropy: Float = 2
        /// Correlation inhibition, stored undivided: `DSGLoss` divides it by the number of BatchNorm layers,
        /// as the official code does, so the term enters as `correlation / L` (Docs/DSG.md §4).
        public var correlation: Float = 1
        /// Total variation of the jittered images (four plain L2 norms of neighbour differences, Docs/DSG.md §5).
        public var totalVariation: Float = 0.01
        /// L2 prior: the mean over samples of each image's L2 norm.
        public var l2: Float = 0.01

        /// The `dsg` preset's weights: 1, 1, 2, 1, 0.01, 0.01 (the official code's).
        public init() {}
    }

    /// The preset the configuration started from, kept for files and reports; the settings below decide what runs.
    public var preset: Preset
    /// Synthetic samples to make in all.
    public var count = 64
    /// Samples optimised together; 0 means one per BatchNorm layer (the paper's choice, N = L).
    public var batchSize = 0
    /// Adam steps per batch (500); 0 keeps the starting images as they are (the `gaussian` preset).
    public var iterations = 500
    /// Adam's initial learning rate on the pixels (0.25 for `dsg`; ZeroQ's 0.5, the official code's 0.9).
    public var learningRate: Float = 0.25
    /// ReduceLROnPlateau on the total loss: patience in iterations, factor 0.1, floor 1e-4.
    public var plateauPatience = 250
    /// How each batch's images start (N(0, 1) for `dsg`).
    public var initialization: Initialization = .gaussian
    /// The weight of every loss term (Docs/DSG.md §5).
    public var weights = Weights()
    /// Margins from this quantile of Gaussian-input deviations; nil for no margins (exact alignment).
    public var marginQuantile: Double? = 0.9
    /// One margin per layer (the default) or one per channel.
    public var marginGranularity: SlackMargins.Granularity = .perLayer
    /// Layerwise sample enhancement (Docs/DSG.md §3): the paper's ×2 by default.
    public var enhancement: LayerEnhancement = .paper(factor: 2)
    /// Whether correlation inhibition is off, reported only, or part of the gradient (the default).
    public var correlation: Correlation = .differentiable
    /// Roll jitter of the image priors: a shift drawn from `−jitter ..< jitter` pixels at every iteration.
    public var jitter = 4
    /// Every batch draws its start, margins' noise, labels and jitter from random numbers seeded by this and the batch
    /// index, so a resumed run makes the same samples.
    public var seed: UInt64 = 0

    /// The settings of `preset` (Docs/DSG.md §6.2; `dsg` by default), 64 samples in batches of one per BatchNorm
    /// layer.
    public init(preset: Preset = .dsg) {
        self.preset = preset
        switch preset {
        case .dsg:
            break
        case .gaussian:
            iterations = 0
            marginQuantile = nil
            enhancement = .none
            correlation = .off
        case .zeroQ:
            initialization = .zeroQ
            learningRate = 0.5
            plateauPatience = 100
            marginQuantile = nil
            enhancement = .none
            correlation = .off
            weights.crossEntropy = 0
            weights.totalVariation = 0
            weights.l2 = 0
        case .dsgCVPR:
            // ZeroQ with slack alignment and layerwise enhancement, as the CVPR paper builds it.
            self = GenerationConfiguration(preset: .zeroQ)
            self.preset = .dsgCVPR
            marginQuantile = 0.9
            enhancement = .paper(factor: 2)
        case .dsgCode:
            initialization = .uniform
            learningRate = 0.9
            plateauPatience = 260
            enhancement = .code(layerCount: 20)
            correlation = .valueOnly
        }
    }
}

extension GenerationConfiguration {
    /// Checks every setting that does not depend on the model
    /// (``DSG/generateSamples(from:configuration:checkpoint:progress:)``
    /// checks the rest).
    public func validate() throws(GenerationError) {
        guard count > 0 else { throw .invalidConfiguration("the sample count must be at least 1") }
        guard batchSize >= 0 else { throw .invalidConfiguration("the batch size must not be negative") }
        guard iterations >= 0 else { throw .invalidConfiguration("the iteration count must not be negative") }
        guard learningRate > 0, learningRate.isFinite else {
            throw .invalidConfiguration("the learning rate must be positive")
        }
        guard plateauPatience >= 0 else { throw .invalidConfiguration("the plateau patience must not be negative") }
        guard jitter >= 0 else { throw .invalidConfiguration("the jitter must not be negative") }
        if let q = marginQuantile, !(0...1).contains(q) {
            throw .invalidConfiguration("the margin quantile must be between 0 and 1, got \(q)")
        }
    }
}

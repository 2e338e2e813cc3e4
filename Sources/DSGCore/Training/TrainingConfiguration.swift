/// Settings of a classifier training run; saved in every checkpoint so a resumed run uses the same ones.
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    /// Passes over the training set; 20 trains the embedded ResNet-20 (Docs/RESULTS.md).
    public var epochs = 20
    /// Images per SGD step; an epoch leaves out the last `count % batchSize` shuffled images.
    public var batchSize = 128
    /// Peak learning rate, annealed to zero over all steps by a cosine schedule.
    public var learningRate: Float = 0.1
    /// SGD momentum; 0 turns momentum (and Nesterov) off.
    public var momentum: Float = 0.9
    /// Nesterov momentum (used only when `momentum > 0`).
    public var nesterov = true
    /// L2 weight decay added to every parameter's gradient, BatchNorm's scale and shift and biases included.
    public var weightDecay: Float = 5e-4
    /// Random crops of the image padded by this many pixels on each side (0: no cropping).
    public var cropPadding = 2
    /// Mirror images left-right with probability 1/2.
    public var horizontalFlip = true
    /// Seeds the shuffles, crops and flips (the model's initial weights come from its builder's seed).
    public var seed: UInt64 = 0

    /// The defaults above: 20 epochs of 128 images, learning rate 0.1, Nesterov momentum 0.9, weight decay 5e-4,
    /// crops padded by 2, flips, seed 0.
    public init() {}

    /// Checks every setting that does not depend on the data; the trainer also checks the batch size against
    /// the training set.
    public func validate() throws(TrainingError) {
        guard epochs > 0 else { throw .invalidConfiguration("epochs must be at least 1") }
        guard batchSize > 0 else { throw .invalidConfiguration("the batch size must be at least 1") }
        guard cropPadding >= 0 else { throw .invalidConfiguration("crop padding must not be negative") }
        guard learningRate > 0, learningRate.isFinite else {
            throw .invalidConfiguration("the learning rate must be positive")
        }
        guard weightDecay >= 0, weightDecay.isFinite else {
            throw .invalidConfiguration("weight decay must not be negative")
        }
        guard momentum >= 0, momentum < 1 else { throw .invalidConfiguration("momentum must be in [0, 1)") }
    }
}

/// A set of images with one class label each, held in memory: `images` is `[N, C, H, W]`, already normalised.
public struct LabeledImages: Sendable {
    /// The images, `[N, C, H, W]`, normalised as the model expects its input.
    public let images: Tensor
    /// One class index per image, in `0..<classes`.
    public let labels: [Int32]
    /// The number of classes the labels index (10 for Fashion-MNIST).
    public let classes: Int

    /// Pairs `images` (`[N, C, H, W]`) with `N` labels; a rank or count mismatch is a programmer error (precondition).
    /// The labels' range is not checked here (the IDX loader checks it).
    public init(images: Tensor, labels: [Int32], classes: Int) {
        precondition(images.shape.rank == 4 && images.shape[0] == labels.count, "LabeledImages: one label per image.")
        (self.images, self.labels, self.classes) = (images, labels, classes)
    }

    /// The number of images `N`.
    public var count: Int { labels.count }
    /// Per-sample shape, `[C, H, W]`.
    public var sampleShape: Shape { Shape(Array(images.shape.dimensions.dropFirst())) }

    /// The first `count` samples (all of them if there are fewer).
    public func prefix(_ count: Int) -> LabeledImages {
        let n = min(count, self.count), size = sampleShape.elementCount
        let scalars = images.withUnsafeBufferPointer { Array($0.prefix(n * size)) }
        return LabeledImages(
            images: Tensor(shape: sampleShape.batched(n), scalars: scalars), labels: Array(labels.prefix(n)),
            classes: classes)
    }

    /// `count` distinct samples drawn with `seed` (the first `count` steps of a Fisher-Yates shuffle), for
    /// calibrating on real images as a reference.
    public func randomSample(_ count: Int, seed: UInt64) -> LabeledImages {
        let n = min(count, self.count), size = sampleShape.elementCount
        var g = SeededRandom(seed: seed)
        var order = Array(0..<self.count)
        for i in 0..<n { order.swapAt(i, i + g.integer(in: 0..<(self.count - i))) }
        let scalars = images.withUnsafeBufferPointer { x in
            order.prefix(n).flatMap { x[($0 * size)..<(($0 + 1) * size)] }
        }
        return LabeledImages(
            images: Tensor(shape: sampleShape.batched(n), scalars: scalars), labels: order.prefix(n).map { labels[$0] },
            classes: classes)
    }
}

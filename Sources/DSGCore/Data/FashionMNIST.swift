import Foundation

/// Fashion-MNIST (Xiao et al. 2017): 28x28 grey images of 10 kinds of clothing, 60,000 for training and
/// 10,000 for testing, as the four gzip IDX files Debian's `dataset-fashion-mnist` installs.
public enum FashionMNIST {
    /// Where Debian's `dataset-fashion-mnist` puts the files.
    public static let defaultDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")
    /// Pixel mean and standard deviation of the training set (pixels scaled to [0, 1]).
    public static let mean: Float = 0.2860, standardDeviation: Float = 0.3530
    /// The number of classes.
    public static let classes = 10
    /// The per-sample shape of its images, `[1, 28, 28]`.
    public static let sampleShape: Shape = [1, 28, 28]
    /// The class names in label order (label 0 is "T-shirt/top").
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// Which of the two sets to load.
    public enum Split: String, Sendable {
        /// The 60,000 training images (`train-*-idx*-ubyte.gz`).
        case train
        /// The 10,000 test images (`t10k-*-idx*-ubyte.gz`), on which accuracies are reported.
        case test
        var prefix: String { self == .train ? "train" : "t10k" }
    }

    /// Loads one split from `directory`, images normalised as `(pixel / 255 - mean) / standardDeviation`.
    public static func load(_ split: Split, from directory: URL = defaultDirectory) throws(IDXError) -> LabeledImages {
        let imagesURL = directory.appendingPathComponent("\(split.prefix)-images-idx3-ubyte.gz")
        let labelsURL = directory.appendingPathComponent("\(split.prefix)-labels-idx1-ubyte.gz")
        let images = try IDXFile.read(imagesURL, rank: 3)
        let labels = try IDXFile.read(labelsURL, rank: 1)
        return try combine(
            images: images, imagesName: imagesURL.lastPathComponent, labels: labels,
            labelsName: labelsURL.lastPathComponent)
    }

    /// Checks that two parsed IDX files form a labelled image set, and builds it.
    public static func combine(images: IDXFile, imagesName: String, labels: IDXFile, labelsName: String)
        throws(IDXError) -> LabeledImages
    {
        guard images.dimensions.count == 3, images.dimensions[1] == 28, images.dimensions[2] == 28 else {
            throw .wrongDimensions(file: imagesName, found: images.dimensions, expected: "[count, 28, 28]")
        }
        let count = images.dimensions[0]
        guard labels.dimensions.count == 1 else {
            throw .wrongDimensions(file: labelsName, found: labels.dimensions, expected: "[count]")
        }
        guard labels.dimensions[0] == count else {
            throw .countMismatch(
                images: imagesName, imageCount: count, labels: labelsName, labelCount: labels.dimensions[0])
        }
        let labelValues = [UInt8](labels.bytes)
        if let bad = labelValues.firstIndex(where: { Int($0) >= classes }) {
            throw .labelOutOfRange(file: labelsName, index: bad, label: Int(labelValues[bad]), classes: classes)
        }
        let scale = 1 / (255 * standardDeviation), shift = -mean / standardDeviation
        let pixels = images.bytes.map { Float($0) * scale + shift }
        return LabeledImages(
            images: Tensor(shape: [count, 1, 28, 28], scalars: pixels), labels: labelValues.map(Int32.init),
            classes: classes)
    }
}

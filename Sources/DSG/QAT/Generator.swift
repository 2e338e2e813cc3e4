import DSGCore
import Foundation

/// Why a generator could not be built, loaded or used.
public enum GeneratorError: Error, Equatable, CustomStringConvertible {
    /// The image shape is not `[C, H, H]` with `H` divisible by 4 and at least 8 (also thrown for fewer than one
    /// class or latent value).
    case unsupportedImageShape(Shape)
    /// A weights file was made for another image shape, number of classes, latent size or conditioning.
    case weightsDoNotMatch(file: String, expected: String, found: String)

    /// What does not fit, in words.
    public var description: String {
        switch self {
        case .unsupportedImageShape(let shape):
            return "a generator makes [C, H, W] images with H = W divisible by 4 (28x28, 32x32), not \(shape)"
        case .weightsDoNotMatch(let file, let expected, let found):
            return "\(file): generator weights for \(found), but this generator makes \(expected)"
        }
    }
}

/// The conditional generator of GDFQ and DSG's quantization-aware training (Docs/DSG.md §10.1): a label embedding
/// multiplies a Gaussian latent vector, a linear layer makes a 128-channel `H/4 x W/4` map, and two nearest 2x
/// upsamplings with 3x3 convolutions, BatchNorm and LeakyReLU(0.2) grow it to the image size; the output is
/// `tanh` followed by an affine-free BatchNorm, so every batch comes out standardised per channel.
///
/// With `.batchNorm` conditioning it is GDFQ's ImageNet generator instead: no embedding on the latent, and
/// the three hidden BatchNorm layers are class-conditional (a scale and shift per class, initialised to 1 and 0).
///
/// A generator always runs in training mode (its BatchNorm layers use the batch's statistics). Its graph has two
/// inputs, the latent `z [latent]` and the label `[]` (a class index stored as a float).
public final class Generator {
    /// How the label enters.
    public enum Conditioning: String, Sendable, Codable, CaseIterable {
        /// GDFQ's CIFAR generator (Docs/DSG.md §10.1): `embedding[label] ⊙ z`.
        case embedding
        /// GDFQ's ImageNet generator (Docs/DSG.md §10.1): class-conditional BatchNorm.
        case batchNorm
    }

    /// The image it makes, `[C, H, W]`.
    public let imageShape: Shape
    /// The number of classes `K` the label indexes: the teacher's outputs.
    public let classes: Int
    /// Size `d` of the latent input `z`.
    public let latentDimension: Int
    /// How the label enters: an embedding on the latent, or class-conditional BatchNorm.
    public let conditioning: Conditioning
    /// The network; its parameters are what a `QATTrainer` trains.
    public let model: Model

    /// A freshly initialised generator (seeded, like every model of the package).
    public init(
        imageShape: Shape, classes: Int, latentDimension: Int = 100, conditioning: Conditioning = .embedding,
        seed: UInt64 = 0
    ) throws {
        guard imageShape.rank == 3, imageShape[1] == imageShape[2], imageShape[1] % 4 == 0, imageShape[1] >= 8,
            classes >= 1,
            latentDimension >= 1
        else { throw GeneratorError.unsupportedImageShape(imageShape) }
        (self.imageShape, self.classes, self.latentDimension, self.conditioning) = (
            imageShape, classes, latentDimension, conditioning
        )
        let s0 = imageShape[1] / 4
        var b = ModelBuilder(seed: seed)
        let z = b.input("z", [latentDimension])
        let label = b.input("label", [])
        /// BatchNorm, class-conditional or not. (eps 0.8 in the hidden layers is GDFQ's: a positional-argument
        /// slip in its code, kept for fidelity, Docs/DSG.md §10.1.)
        func norm(_ h: ValueID, _ name: String, _ epsilon: Float) throws -> ValueID {
            switch conditioning {
            case .embedding: return try b.batchNorm(h, name, epsilon: epsilon)
            case .batchNorm:
                return try b.add(
                    ConditionalBatchNormOp(channels: b.model.shape(of: h)[0], classes: classes, epsilon: epsilon), name,
                    [h, label])
            }
        }
        var h = z
        if conditioning == .embedding {
            let embedded = try b.add(EmbeddingOp(classes: classes, dimension: latentDimension), "embedding", [label])
            h = try b.add(MultiplyOp(), "condition", [embedded, z])
        }
        h = try b.linear(h, "fc", outFeatures: 128 * s0 * s0)
        h = try norm(try b.add(ReshapeOp([128, s0, s0]), "reshape", [h]), "bn0", 1e-5)
        h = try b.add(UpsampleNearest2xOp(), "up1", [h])
        h = try b.conv2d(h, "conv1", outChannels: 128, kernel: 3, padding: 1, bias: true)
        h = try b.activation(try norm(h, "bn1", 0.8), .leakyReLU(slope: 0.2), "act1")
        h = try b.add(UpsampleNearest2xOp(), "up2", [h])
        h = try b.conv2d(h, "conv2", outChannels: 64, kernel: 3, padding: 1, bias: true)
        h = try b.activation(try norm(h, "bn2", 0.8), .leakyReLU(slope: 0.2), "act2")
        h = try b.conv2d(h, "conv3", outChannels: imageShape[0], kernel: 3, padding: 1, bias: true)
        h = try b.activation(h, .tanh, "tanh")
        h = try b.batchNorm(h, "output_bn", affine: false)
        model = b.finish(outputs: [h])
    }

    /// What the weight files record of the shape, so a file for other images is refused.
    var signature: String {
        "\(imageShape[0])x\(imageShape[1])x\(imageShape[2]) images, \(classes) classes, latent \(latentDimension), "
            + "\(conditioning.rawValue) conditioning"
    }

    /// Writes the weights (and running statistics) as safetensors, atomically.
    public func save(to url: URL) throws {
        try Safetensors.write(
            Safetensors.Contents(tensors: model.stateDict, metadata: ["generator": signature]), to: url)
    }

    /// Reads weights written by `save(to:)` for the same image shape, classes and latent size.
    public func load(from url: URL) throws {
        let contents = try Safetensors.read(url)
        let found = contents.metadata["generator"] ?? "no generator"
        guard found == signature else {
            throw GeneratorError.weightsDoNotMatch(file: url.lastPathComponent, expected: signature, found: found)
        }
        try model.load(contents, file: url.lastPathComponent)
    }
}

import DSGCore
import Foundation

/// Why a sample-set file cannot be used.
public enum SampleSetError: Error, Equatable, CustomStringConvertible {
    /// The safetensors file lacks the sample-set format key: some other file.
    case notASampleSet(file: String)
    /// A sample set whose images tensor or metadata is missing, unreadable or inconsistent.
    case corrupt(file: String, reason: String)
    /// Resuming from a checkpoint made with another configuration or batch size.
    case differentConfiguration(file: String)
    /// Resuming from a checkpoint whose samples do not have the model's input shape.
    case differentModel(file: String, expected: Shape, found: Shape)

    /// The file's name and why it cannot be used.
    public var description: String {
        switch self {
        case .notASampleSet(let f): return "\(f): not a swift-dsg sample set (no sample-set metadata)"
        case .corrupt(let f, let reason): return "\(f): \(reason)"
        case .differentConfiguration(let f):
            return "\(f) was made with another generation configuration; use another file or the same configuration"
        case .differentModel(let f, let expected, let found):
            return "\(f) holds samples of shape \(found), the model takes \(expected)"
        }
    }
}

/// Synthetic samples with the configuration, batch size, final loss terms and wall time that made them.
public struct SampleSet: Sendable {
    /// `[count, C, H, W]` in the model's normalised input space.
    public let images: Tensor
    /// The configuration that made the samples.
    public let configuration: GenerationConfiguration
    /// The batch size the samples were optimised in (the configuration's `batchSize` resolved: 0 became `L`).
    public let batchSize: Int
    /// The last iteration's loss terms of every batch.
    public let losses: [LossTerms]
    /// Wall time of generation, over all runs if it was resumed.
    public let seconds: Double
    /// Where the optimisation's time went, summed over the batches made in the last run.
    public let timing: GenerationTiming

    /// A sample set of `images` (`[N, C, H, W]`) made with `configuration` in batches of `batchSize`, with each
    /// batch's last loss terms, the wall time and where the time went.
    public init(
        images: Tensor, configuration: GenerationConfiguration, batchSize: Int, losses: [LossTerms], seconds: Double,
        timing: GenerationTiming = GenerationTiming()
    ) {
        (self.images, self.configuration, self.batchSize) = (images, configuration, batchSize)
        (self.losses, self.seconds, self.timing) = (losses, seconds, timing)
    }

    /// The set of whole batches made so far, `scalars` their images in batch order, cut to the configuration's
    /// count (the last batch may hold more than the count needs).
    package init(
        batches scalars: [Float], sample: Shape, configuration: GenerationConfiguration, batchSize: Int,
        losses: [LossTerms], seconds: Double, timing: GenerationTiming = GenerationTiming()
    ) {
        let n = min(scalars.count / sample.elementCount, configuration.count)
        self.init(
            images: Tensor(shape: sample.batched(n), scalars: Array(scalars.prefix(n * sample.elementCount))),
            configuration: configuration, batchSize: batchSize, losses: losses, seconds: seconds, timing: timing)
    }

    /// The number of samples `N`: `configuration.count` once complete, fewer in a checkpoint of an unfinished run.
    public var count: Int { images.shape[0] }

    private static let format = "swift-dsg sample set 1"
    private enum Key {
        // The configuration's key keeps its first name, "options", so earlier sample files still load.
        static let format = "format", options = "options", batchSize = "batch_size", losses = "losses",
            seconds = "seconds"
    }

    /// Checks that a run of `configuration` in batches of `batchSize`, on images of `sample` (`[C, H, W]`), can
    /// continue from this set, read from the file called `file`: throws
    /// ``SampleSetError/differentConfiguration(file:)`` or ``SampleSetError/differentModel(file:expected:found:)``
    /// rather than mix samples of another run.
    package func checkContinues(
        configuration: GenerationConfiguration, batchSize: Int, sample: Shape, file: String
    ) throws(SampleSetError) {
        guard self.configuration == configuration, self.batchSize == batchSize else {
            throw .differentConfiguration(file: file)
        }
        guard Array(images.shape.dimensions.dropFirst()) == sample.dimensions else {
            throw .differentModel(file: file, expected: sample, found: images.shape)
        }
    }

    /// Writes the images (safetensors tensor `images`) with everything else as JSON metadata, atomically.
    public func save(to url: URL) throws {
        let metadata = [
            Key.format: Self.format,
            Key.options: try configuration.metadataJSON(),
            Key.batchSize: String(batchSize),
            Key.losses: try losses.metadataJSON(),
            Key.seconds: String(seconds),
        ]
        try Safetensors.write(Safetensors.Contents(tensors: [("images", images)], metadata: metadata), to: url)
    }

    /// Reads a sample set written by ``save(to:)``, checking that every part is present and consistent.
    public static func load(from url: URL) throws -> SampleSet {
        let file = url.lastPathComponent
        let contents = try Safetensors.read(url)
        guard contents.metadata[Key.format] == format else { throw SampleSetError.notASampleSet(file: file) }
        let decoder = JSONDecoder()
        guard let images = contents.tensor(named: "images"), images.shape.rank == 4 else {
            throw SampleSetError.corrupt(file: file, reason: "no [N, C, H, W] tensor named 'images'")
        }
        guard
            let configuration = contents.metadata[Key.options].flatMap({
                try? decoder.decode(GenerationConfiguration.self, from: Data($0.utf8))
            }),
            let batchSize = contents.metadata[Key.batchSize].flatMap(Int.init), batchSize > 0,
            let losses = contents.metadata[Key.losses].flatMap({
                try? decoder.decode([LossTerms].self, from: Data($0.utf8))
            }),
            let seconds = contents.metadata[Key.seconds].flatMap(Double.init)
        else { throw SampleSetError.corrupt(file: file, reason: "its metadata is incomplete or unreadable") }
        guard images.shape[0] <= configuration.count, losses.count == (images.shape[0] + batchSize - 1) / batchSize
        else {
            throw SampleSetError.corrupt(
                file: file,
                reason: "\(images.shape[0]) images and \(losses.count) batch reports do not fit batches of \(batchSize)"
            )
        }
        return SampleSet(
            images: images, configuration: configuration, batchSize: batchSize, losses: losses, seconds: seconds,
            timing: GenerationTiming())
    }
}

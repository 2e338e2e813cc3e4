import DSGCore
import DSGKernels

/// Per-sample, per-channel statistics of a `[N, C, H, W]` activation: the mean over the plane and the standard
/// deviation `sqrt(unbiased variance + 1e-6)` (Docs/DSG.md §1, as the official PTQ code computes them), and the
/// backward pass that turns gradients with respect to those statistics into a gradient of the activation.
///
/// Layout: `means[n * C + c]`, `deviations[n * C + c]`.
public struct SampleStatistics: Sendable {
    /// Samples `N`, channels `C` and elements per channel plane `H * W` (at least 2).
    public let batch: Int, channels: Int, plane: Int
    /// Per sample and channel, the mean over the plane, at `n * C + c`.
    public private(set) var means: [Float]
    /// Per sample and channel, `sqrt(unbiased variance + 1e-6)` over the plane, at `n * C + c`.
    public private(set) var deviations: [Float]

    /// The constant under the square root, as in the official code.
    public static let epsilon: Double = 1e-6

    /// Zeroed statistics for a batch of `batch` samples; a plane of fewer than two values is a programmer error.
    public init(batch: Int, channels: Int, plane: Int) {
        precondition(plane > 1, "SampleStatistics: the unbiased variance needs at least two values per plane.")
        (self.batch, self.channels, self.plane) = (batch, channels, plane)
        means = Array(repeating: 0, count: batch * channels)
        deviations = Array(repeating: 0, count: batch * channels)
    }

    /// Measures `activation` (`[n, C, H, W]`, `n * C * plane` values), in Double, as samples `first ..< first + n`
    /// (all `batch` samples by default).
    public mutating func measure(_ activation: UnsafeBufferPointer<Float>, firstSample first: Int = 0) {
        let rows = activation.count / plane
        precondition(
            activation.count == rows * plane && rows % channels == 0 && first * channels + rows <= batch * channels,
            "SampleStatistics.measure: wrong activation size.")
        let p = Double(plane)
        for r in 0..<rows {
            let row = activation.baseAddress! + r * plane, i = first * channels + r
            let mean = Reductions.sum(row, count: plane) / p
            let squares = Reductions.squaredDeviations(row, count: plane, mean: mean)
            means[i] = Float(mean)
            deviations[i] = Float((squares / (p - 1) + Self.epsilon).squareRoot())
        }
    }

    /// The statistics of `layer`'s input for every one of `images` (`[N, C, H, W]`), through `model` in
    /// evaluation mode, `batchSize` images per pass.
    public static func measure(
        _ images: Tensor, model: Model, layer: BatchNormLayer, batchSize: Int = 64
    ) throws -> SampleStatistics {
        try measure(images, model: model, layers: [layer], batchSize: batchSize)[0]
    }

    /// The statistics of every one of `layers`' inputs for all of `images`, in one pass through `model`; after
    /// each batch `body` may read the rest of the pass (the diversity metrics count predicted classes there).
    public static func measure(
        _ images: Tensor, model: Model, layers: [BatchNormLayer], batchSize: Int = 64,
        eachBatch body: (GraphExecutor, Range<Int>) throws -> Void = { _, _ in }
    ) throws -> [SampleStatistics] {
        var statistics = try layers.map {
            try BatchNormTarget(model: model, layer: $0).emptyStatistics(batch: images.shape[0])
        }
        try BatchedInference(model: model, batchSize: batchSize).forEachBatch(of: images) { executor, samples in
            for (l, layer) in layers.enumerated() {
                executor.withValue(layer.input) { statistics[l].measure($0, firstSample: samples.lowerBound) }
            }
            try body(executor, samples)
        }
        return statistics
    }

    /// Adds `dL/dA` to `gradient` given `dL/dmean` and `dL/ddeviation` per sample and channel:
    /// `dA = dmean / HW + ddeviation * (A - mean) / ((HW - 1) * deviation)`.
    public func backward(
        activation: UnsafeBufferPointer<Float>, meanGradient: [Float], deviationGradient: [Float],
        into gradient: UnsafeMutableBufferPointer<Float>
    ) {
        let p = Float(plane)
        for i in 0..<(batch * channels) where meanGradient[i] != 0 || deviationGradient[i] != 0 {
            let row = activation.baseAddress! + i * plane, out = gradient.baseAddress! + i * plane
            let a = meanGradient[i] / p
            let b = deviationGradient[i] / ((p - 1) * deviations[i])
            let m = means[i]
            for k in 0..<plane { out[k] += a + b * (row[k] - m) }
        }
    }
}

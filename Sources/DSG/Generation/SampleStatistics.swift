import DSGCore
import DSGKernels

/// Per-sample, per-channel statistics of a `[N, C, H, W]` activation: the mean over the plane and the standard
/// deviation `sqrt(unbiased variance + 1e-6)` (DSG-SPEC §1, as the official PTQ code computes them), and the
/// backward pass that turns gradients with respect to those statistics into a gradient of the activation.
///
/// Layout: `means[n * C + c]`, `deviations[n * C + c]`.
public struct SampleStatistics: Sendable {
    public let batch: Int, channels: Int, plane: Int
    public private(set) var means: [Float]
    public private(set) var deviations: [Float]

    /// The constant under the square root, as in the official code.
    public static let epsilon: Double = 1e-6

    public init(batch: Int, channels: Int, plane: Int) {
        precondition(plane > 1, "SampleStatistics: the unbiased variance needs at least two values per plane.")
        (self.batch, self.channels, self.plane) = (batch, channels, plane)
        means = Array(repeating: 0, count: batch * channels)
        deviations = Array(repeating: 0, count: batch * channels)
    }

    /// Measures `activation` (`[N, C, H, W]`, `N * C * plane` values), in Double.
    public mutating func measure(_ activation: UnsafeBufferPointer<Float>) {
        precondition(activation.count == batch * channels * plane, "SampleStatistics.measure: wrong activation size.")
        let p = Double(plane)
        for i in 0..<(batch * channels) {
            let row = activation.baseAddress! + i * plane
            let mean = Reductions.sum(row, count: plane) / p
            let squares = Reductions.squaredDeviations(row, count: plane, mean: mean)
            means[i] = Float(mean)
            deviations[i] = Float((squares / (p - 1) + Self.epsilon).squareRoot())
        }
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

import DSGCore
import DSGKernels

/// The BatchNorm-statistics term of the QAT generator loss (DSG-SPEC §7.4-7.5) for one BatchNorm layer, on the
/// statistics of the whole batch: per channel, the mean `m̄_c` and the biased variance `v̄_c` of the layer's
/// input over samples and positions, against the running mean `μ_c` and running variance `v_c`.
///
/// - `slack` (DSG, the paper's hinge): `Σ_c [|m̄_c − μ_c| − δ]_+² + [|v̄_c − v_c| − γ]_+²`;
/// - `gdfq` (the GDFQ baseline): `mean_c (m̄_c − μ_c)² + mean_c (v̄_c − v_c)²`, no margins.
public struct BatchStatisticsAlignment: Sendable {
    public enum Form: String, Sendable, Codable {
        case slack
        case gdfq
    }

    public let form: Form
    public let targetMean: [Float], targetVariance: [Float]
    /// Margins on the mean (`δ`) and on the variance (`γ`): one value for the layer or one per channel
    /// (unused by `gdfq`).
    public let meanMargin: [Float], varianceMargin: [Float]
    private var means: [Double], variances: [Double], meanGradient: [Double], varianceGradient: [Double]

    public init(form: Form, targetMean: [Float], targetVariance: [Float], meanMargin: [Float] = [0], varianceMargin: [Float] = [0]) {
        let c = targetMean.count
        precondition(targetVariance.count == c, "BatchStatisticsAlignment: one target variance per channel.")
        precondition([1, c].contains(meanMargin.count) && [1, c].contains(varianceMargin.count), "BatchStatisticsAlignment: margins are per layer or per channel.")
        (self.form, self.targetMean, self.targetVariance, self.meanMargin, self.varianceMargin) = (form, targetMean, targetVariance, meanMargin, varianceMargin)
        means = Array(repeating: 0, count: c)
        variances = means
        meanGradient = means
        varianceGradient = means
    }

    /// The term for `activation` (`[N, C, plane]` values); adds `scale * dL/dA` into `gradient`.
    public mutating func evaluate(
        _ activation: UnsafeBufferPointer<Float>, batch n: Int, plane: Int, gradient: UnsafeMutableBufferPointer<Float>, scale: Float
    ) -> Double {
        let c = targetMean.count
        precondition(activation.count == n * c * plane && gradient.count == activation.count, "BatchStatisticsAlignment: wrong activation size.")
        let count = Double(n * plane)
        for ch in 0..<c {
            var sum = 0.0
            for s in 0..<n { sum += Reductions.sum(activation.baseAddress! + (s * c + ch) * plane, count: plane) }
            let mean = sum / count
            var squares = 0.0
            for s in 0..<n { squares += Reductions.squaredDeviations(activation.baseAddress! + (s * c + ch) * plane, count: plane, mean: mean) }
            means[ch] = mean
            variances[ch] = squares / count
        }
        var value = 0.0
        for ch in 0..<c {
            let dm = means[ch] - Double(targetMean[ch]), dv = variances[ch] - Double(targetVariance[ch])
            switch form {
            case .gdfq:
                value += (dm * dm + dv * dv) / Double(c)
                meanGradient[ch] = 2 * dm / Double(c)
                varianceGradient[ch] = 2 * dv / Double(c)
            case .slack:
                let (vm, gm) = SlackAlignment.hinge(Float(means[ch]), targetMean[ch], meanMargin[meanMargin.count == 1 ? 0 : ch])
                let (vv, gv) = SlackAlignment.hinge(Float(variances[ch]), targetVariance[ch], varianceMargin[varianceMargin.count == 1 ? 0 : ch])
                value += vm + vv
                meanGradient[ch] = gm
                varianceGradient[ch] = gv
            }
        }
        // dm̄/dA = 1 / (N·P); dv̄/dA = 2 (A − m̄) / (N·P).
        for s in 0..<n {
            for ch in 0..<c where meanGradient[ch] != 0 || varianceGradient[ch] != 0 {
                let a = Float(Double(scale) * meanGradient[ch] / count), b = Float(Double(scale) * 2 * varianceGradient[ch] / count)
                let m = Float(means[ch])
                let row = activation.baseAddress! + (s * c + ch) * plane, out = gradient.baseAddress! + (s * c + ch) * plane
                for k in 0..<plane { out[k] += a + b * (row[k] - m) }
            }
        }
        return value
    }
}

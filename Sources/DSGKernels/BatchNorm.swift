/// Batch normalization over NCHW buffers, per channel.
///
/// Training mode normalises with the batch statistics (biased variance), saves `mean[C]` and `invStd[C]` for the
/// backward pass and moves the running statistics by `momentum` (PyTorch's convention: `running = (1 - m) *
/// running + m * batch`, the running variance unbiased). Evaluation mode uses the running statistics.
/// `gamma` and `beta` are nil for an affine-free layer (scale 1, shift 0).
public enum BatchNorm {
    /// The layout of an NCHW buffer as BatchNorm sees it: `batch` samples of `channels` planes of `plane` (`H * W`)
    /// elements each.
    public struct Sizes: Sendable {
        /// Samples `N`, channels `C` and elements per channel plane `H * W`.
        public let batch: Int, channels: Int, plane: Int
        /// Sizes of an `[N, C, H, W]` buffer with `plane = H * W`.
        public init(batch: Int, channels: Int, plane: Int) {
            (self.batch, self.channels, self.plane) = (batch, channels, plane)
        }
        var reduced: Int { batch * plane }
    }

    /// Training-mode forward. Writes `output`, `savedMean`, `savedInvStd` and updates the running statistics.
    public static func forwardTraining(
        _ s: Sizes, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
        epsilon: Float, momentum: Float,
        runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>,
        savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        Parallel.forEachChunk(
            of: s.channels,
            TrainingJob(
                s: s, input: input, gamma: gamma, beta: beta, epsilon: epsilon, momentum: momentum,
                runningMean: runningMean,
                runningVar: runningVar, savedMean: savedMean, savedInvStd: savedInvStd, output: output))
    }

    /// Evaluation-mode forward with the running statistics.
    public static func forwardEvaluation(
        _ s: Sizes, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
        epsilon: Float, runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        Parallel.forEachChunk(
            of: s.channels,
            EvaluationJob(
                s: s, input: input, gamma: gamma, beta: beta, epsilon: epsilon, runningMean: runningMean,
                runningVar: runningVar, output: output))
    }

    /// Backward through either mode. `mean`/`invStd` are the saved batch statistics (training) or the running
    /// statistics turned into `1 / sqrt(var + eps)` (evaluation). Gradients are accumulated (`+=`).
    ///
    /// With `x̂ = (x - mean) * invStd` and `g = dy * gamma`, training mode gives
    /// `dx = invStd * (g - mean(g) - x̂ * mean(g * x̂))`; evaluation mode, where the statistics are constants,
    /// gives `dx = invStd * g`. In both, `dgamma = Σ dy * x̂` and `dbeta = Σ dy`.
    public static func backward(
        _ s: Sizes, training: Bool, input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>?, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        inputGrad: UnsafeMutablePointer<Float>?,
        gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?
    ) {
        Parallel.forEachChunk(
            of: s.channels,
            BackwardJob(
                s: s, training: training, input: input, outputGrad: outputGrad, gamma: gamma, mean: mean,
                invStd: invStd,
                inputGrad: inputGrad, gammaGrad: gammaGrad, betaGrad: betaGrad))
    }

    @inline(__always)
    fileprivate static func normalise(
        _ s: Sizes, _ c: Int, _ input: UnsafePointer<Float>, _ mean: Float, _ invStd: Float,
        _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?, _ output: UnsafeMutablePointer<Float>
    ) {
        let scale = (gamma?[c] ?? 1) * invStd
        let shift = (beta?[c] ?? 0) - mean * scale
        let (scales, shifts) = (Vector(repeating: scale), Vector(repeating: shift))
        forEachRow(s, c) { row in
            let (x, y) = (input + row, output + row)
            forEachVector(0..<s.plane) { i in
                storeVector(loadVector(x + i) * scales + shifts, y + i)
            } scalar: { i in
                y[i] = x[i] * scale + shift
            }
        }
    }

    /// Calls `body` with the element offset of channel `c`'s plane in every sample.
    @inline(__always)
    fileprivate static func forEachRow(_ s: Sizes, _ c: Int, _ body: (Int) -> Void) {
        for n in 0..<s.batch { body((n * s.channels + c) * s.plane) }
    }
}

// One chunk of channels per job: channels are independent, so the chunks touch disjoint memory and every
// value is computed exactly as by a loop over all channels.

private struct TrainingJob: ChunkJob {
    let s: BatchNorm.Sizes, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?
    let epsilon: Float, momentum: Float
    let runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>
    let savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>,
        output: UnsafeMutablePointer<Float>

    func run(samples channels: Range<Int>, chunk: Int) {
        let m = Double(s.reduced)
        for c in channels {
            // Two passes in Double: the mean first, then the centred sum of squares (no cancellation).
            var sum = 0.0
            BatchNorm.forEachRow(s, c) { row in sum += Reductions.sum(input + row, count: s.plane) }
            let mean = sum / m
            var squares = 0.0
            BatchNorm.forEachRow(s, c) { row in
                squares += Reductions.squaredDeviations(input + row, count: s.plane, mean: mean)
            }
            let variance = squares / m
            let invStd = 1 / (variance + Double(epsilon)).squareRoot()
            savedMean[c] = Float(mean)
            savedInvStd[c] = Float(invStd)
            let unbiased = s.reduced > 1 ? squares / (m - 1) : variance
            runningMean[c] = (1 - momentum) * runningMean[c] + momentum * Float(mean)
            runningVar[c] = (1 - momentum) * runningVar[c] + momentum * Float(unbiased)
            BatchNorm.normalise(s, c, input, Float(mean), Float(invStd), gamma, beta, output)
        }
    }
}

private struct EvaluationJob: ChunkJob {
    let s: BatchNorm.Sizes, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?
    let epsilon: Float, runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>

    func run(samples channels: Range<Int>, chunk: Int) {
        for c in channels {
            let invStd = 1 / (runningVar[c] + epsilon).squareRoot()
            BatchNorm.normalise(s, c, input, runningMean[c], invStd, gamma, beta, output)
        }
    }
}

private struct BackwardJob: ChunkJob {
    let s: BatchNorm.Sizes, training: Bool, input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>
    let gamma: UnsafePointer<Float>?, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>
    let inputGrad: UnsafeMutablePointer<Float>?, gammaGrad: UnsafeMutablePointer<Float>?,
        betaGrad: UnsafeMutablePointer<Float>?

    func run(samples channels: Range<Int>, chunk: Int) {
        let m = Double(s.reduced)
        // Evaluation mode without parameter gradients (DSG's backward to the images) needs neither sum.
        let needsSums = training || gammaGrad != nil || betaGrad != nil
        for c in channels {
            let mu = mean[c], inv = invStd[c]
            var sumDy = 0.0, sumDyXhat = 0.0
            if needsSums {
                BatchNorm.forEachRow(s, c) { row in
                    for i in 0..<s.plane {
                        let dy = Double(outputGrad[row + i])
                        sumDy += dy
                        sumDyXhat += dy * Double((input[row + i] - mu) * inv)
                    }
                }
                gammaGrad?[c] += Float(sumDyXhat)
                betaGrad?[c] += Float(sumDy)
            }
            guard let inputGrad else { continue }
            let scale = (gamma?[c] ?? 1) * inv
            if training {
                let meanDy = Float(sumDy / m), meanDyXhat = Float(sumDyXhat / m)
                let (mus, invs, scales) = (Vector(repeating: mu), Vector(repeating: inv), Vector(repeating: scale))
                let (meanDys, meanDyXhats) = (Vector(repeating: meanDy), Vector(repeating: meanDyXhat))
                BatchNorm.forEachRow(s, c) { row in
                    let (x, dy, dx) = (input + row, outputGrad + row, inputGrad + row)
                    forEachVector(0..<s.plane) { i in
                        let xhat = (loadVector(x + i) - mus) * invs
                        let g = scales * (loadVector(dy + i) - meanDys - xhat * meanDyXhats)
                        storeVector(loadVector(dx + i) + g, dx + i)
                    } scalar: { i in
                        let xhat = (x[i] - mu) * inv
                        dx[i] += scale * (dy[i] - meanDy - xhat * meanDyXhat)
                    }
                }
            } else {
                let scales = Vector(repeating: scale)
                BatchNorm.forEachRow(s, c) { row in
                    let (dy, dx) = (outputGrad + row, inputGrad + row)
                    forEachVector(0..<s.plane) { i in
                        storeVector(loadVector(dx + i) + scales * loadVector(dy + i), dx + i)
                    } scalar: { i in
                        dx[i] += scale * dy[i]
                    }
                }
            }
        }
    }
}

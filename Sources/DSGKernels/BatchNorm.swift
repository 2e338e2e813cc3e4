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
    }

    /// A batch split into shares held by several processes, for synchronised BatchNorm: how many samples all the
    /// shares hold together, and `sum`, which adds every share's values into each share's buffer in place. Every
    /// share calls `sum` at the same points with buffers of the same size.
    public struct Sharing {
        /// Samples in all the shares together.
        public let samples: Int
        /// Adds the shares' buffers elementwise, leaving the total in each.
        public let sum: (UnsafeMutableBufferPointer<Double>) -> Void

        /// The shares of a batch of `samples`, combined by `sum`.
        public init(samples: Int, sum: @escaping (UnsafeMutableBufferPointer<Double>) -> Void) {
            (self.samples, self.sum) = (samples, sum)
        }
    }

    /// Training-mode forward. Writes `output`, `savedMean`, `savedInvStd` and updates the running statistics;
    /// `scratch` holds `2 * channels` Doubles (the per-channel sums). With `sharing`, the statistics are those of
    /// the whole batch its shares hold (every share normalises with the same ones and moves the running
    /// statistics alike).
    public static func forwardTraining(
        _ s: Sizes, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
        epsilon: Float, momentum: Float,
        runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>,
        savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Double>, sharing: Sharing? = nil
    ) {
        let c = s.channels, m = Double((sharing?.samples ?? s.batch) * s.plane)
        // Two passes in Double: the mean first, then the centred sum of squares (no cancellation). Each pass's
        // sums are complete before the shares' sums are added, hence one job per pass.
        let means = scratch, squares = scratch + c
        Parallel.forEachChunk(of: c, SumJob(s: s, input: input, sums: means))
        sharing?.sum(UnsafeMutableBufferPointer(start: means, count: c))
        for ch in 0..<c { means[ch] /= m }
        Parallel.forEachChunk(of: c, SquaresJob(s: s, input: input, means: means, squares: squares))
        sharing?.sum(UnsafeMutableBufferPointer(start: squares, count: c))
        for ch in 0..<c {
            let variance = squares[ch] / m
            savedMean[ch] = Float(means[ch])
            savedInvStd[ch] = Float(1 / (variance + Double(epsilon)).squareRoot())
            let unbiased = m > 1 ? squares[ch] / (m - 1) : variance
            runningMean[ch] = (1 - momentum) * runningMean[ch] + momentum * Float(means[ch])
            runningVar[ch] = (1 - momentum) * runningVar[ch] + momentum * Float(unbiased)
        }
        Parallel.forEachChunk(
            of: c,
            NormaliseJob(
                s: s, input: input, gamma: gamma, beta: beta, mean: savedMean, invStd: savedInvStd, output: output))
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
    /// gives `dx = invStd * g`. In both, `dgamma = Σ dy * x̂` and `dbeta = Σ dy`. With `sharing` (training mode),
    /// the means are over the whole batch its shares hold; `dgamma` and `dbeta` get this share's sums only, as
    /// every other parameter gradient does. `scratch` holds `2 * channels` Doubles.
    public static func backward(
        _ s: Sizes, training: Bool, input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>?, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>,
        inputGrad: UnsafeMutablePointer<Float>?,
        gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?,
        scratch: UnsafeMutablePointer<Double>, sharing: Sharing? = nil
    ) {
        let c = s.channels
        let sumDy = scratch, sumDyXhat = scratch + c
        // Evaluation mode without parameter gradients (DSG's backward to the images) needs neither sum.
        if training || gammaGrad != nil || betaGrad != nil {
            Parallel.forEachChunk(
                of: c,
                GradientSumsJob(
                    s: s, input: input, outputGrad: outputGrad, mean: mean, invStd: invStd, sumDy: sumDy,
                    sumDyXhat: sumDyXhat))
            for ch in 0..<c {
                gammaGrad?[ch] += Float(sumDyXhat[ch])
                betaGrad?[ch] += Float(sumDy[ch])
            }
            if training { sharing?.sum(UnsafeMutableBufferPointer(start: scratch, count: 2 * c)) }
        }
        guard let inputGrad else { return }
        Parallel.forEachChunk(
            of: c,
            InputGradientJob(
                s: s, training: training, input: input, outputGrad: outputGrad, gamma: gamma, mean: mean,
                invStd: invStd, count: Double((sharing?.samples ?? s.batch) * s.plane),
                sumDy: sumDy, sumDyXhat: sumDyXhat, inputGrad: inputGrad))
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

private struct SumJob: ChunkJob {
    let s: BatchNorm.Sizes, input: UnsafePointer<Float>, sums: UnsafeMutablePointer<Double>

    func run(samples channels: Range<Int>, chunk: Int) {
        for c in channels {
            var sum = 0.0
            BatchNorm.forEachRow(s, c) { row in sum += Reductions.sum(input + row, count: s.plane) }
            sums[c] = sum
        }
    }
}

private struct SquaresJob: ChunkJob {
    let s: BatchNorm.Sizes, input: UnsafePointer<Float>, means: UnsafePointer<Double>
    let squares: UnsafeMutablePointer<Double>

    func run(samples channels: Range<Int>, chunk: Int) {
        for c in channels {
            var sum = 0.0
            BatchNorm.forEachRow(s, c) { row in
                sum += Reductions.squaredDeviations(input + row, count: s.plane, mean: means[c])
            }
            squares[c] = sum
        }
    }
}

private struct NormaliseJob: ChunkJob {
    let s: BatchNorm.Sizes, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?
    let mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>

    func run(samples channels: Range<Int>, chunk: Int) {
        for c in channels { BatchNorm.normalise(s, c, input, mean[c], invStd[c], gamma, beta, output) }
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

private struct GradientSumsJob: ChunkJob {
    let s: BatchNorm.Sizes, input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>
    let mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>
    let sumDy: UnsafeMutablePointer<Double>, sumDyXhat: UnsafeMutablePointer<Double>

    func run(samples channels: Range<Int>, chunk: Int) {
        for c in channels {
            let mu = mean[c], inv = invStd[c]
            var dySum = 0.0, dyXhatSum = 0.0
            BatchNorm.forEachRow(s, c) { row in
                for i in 0..<s.plane {
                    let dy = Double(outputGrad[row + i])
                    dySum += dy
                    dyXhatSum += dy * Double((input[row + i] - mu) * inv)
                }
            }
            (sumDy[c], sumDyXhat[c]) = (dySum, dyXhatSum)
        }
    }
}

private struct InputGradientJob: ChunkJob {
    let s: BatchNorm.Sizes, training: Bool, input: UnsafePointer<Float>, outputGrad: UnsafePointer<Float>
    let gamma: UnsafePointer<Float>?, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>
    /// Elements per channel over the whole batch (all shares'), and the sums over them.
    let count: Double, sumDy: UnsafePointer<Double>, sumDyXhat: UnsafePointer<Double>
    let inputGrad: UnsafeMutablePointer<Float>

    func run(samples channels: Range<Int>, chunk: Int) {
        for c in channels {
            let mu = mean[c], inv = invStd[c]
            let scale = (gamma?[c] ?? 1) * inv
            if training {
                let meanDy = Float(sumDy[c] / count), meanDyXhat = Float(sumDyXhat[c] / count)
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

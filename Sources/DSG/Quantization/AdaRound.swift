import DSGCore
import Foundation

/// AdaRound (Nagel et al., "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML 2020): instead of
/// rounding each weight to its nearest level, learn per weight whether it goes down or up, so that the layer's
/// output on calibration images stays closest to the full-precision output.
///
/// Each weight `w` of a channel with quantizer `(s, zero)` (``UniformQuantizer``: `x̂ = (q + zero) / s`) becomes
///
///     w̃ = (clamp(⌊s·w − zero⌋ + h(v), −2^(k−1), 2^(k−1) − 1) + zero) / s,
///     h(v) = clamp(σ(v)·(ζ − γ) + γ, 0, 1)         (the rectified sigmoid, ζ = 1.1, γ = −0.1)
///
/// with one learned `v` per weight, started where `h(v)` is the weight's own fractional part (so `w̃ = w` inside
/// the range). The loss is the reconstruction error plus `λ·Σ(1 − |2h(v) − 1|^β)`, which pushes every `h` to 0 or 1
/// as `β` is annealed from 20 to 2 after a warm-up without it. The result is then fixed: up where `h(v) ≥ 1/2`
/// (`v ≥ 0`), down elsewhere, so the weights lie exactly on the quantizer's grid.
public enum AdaRound {
    /// The rectified sigmoid's stretch: `σ` is scaled to `(γ, ζ)` and clipped to `[0, 1]`, so `h` reaches 0 and 1
    /// at finite `v` (and its gradient vanishes there).
    public static let zeta: Float = 1.1, gamma: Float = -0.1

    /// `h(v) = clamp(σ(v)·(ζ − γ) + γ, 0, 1)`.
    public static func rectifiedSigmoid(_ v: Float) -> Float {
        min(max(sigmoid(v) * (zeta - gamma) + gamma, 0), 1)
    }

    /// `dh/dv`: `σ(v)(1 − σ(v))(ζ − γ)` where `h` is not clipped, 0 where it is.
    public static func rectifiedSigmoidDerivative(_ v: Float) -> Float {
        let s = sigmoid(v), h = s * (zeta - gamma) + gamma
        return h > 0 && h < 1 ? s * (1 - s) * (zeta - gamma) : 0
    }

    /// The `v` whose rectified sigmoid is `fraction` (in `[0, 1)`): where learning starts.
    public static func variable(forFraction fraction: Float) -> Float {
        let s = (fraction - gamma) / (zeta - gamma)
        return log(s / (1 - s))
    }

    /// The rounding regulariser `Σ(1 − |2h(v) − 1|^β)` over `v`, in Double; adds `weight` times its gradient with
    /// respect to `v` to `gradient`.
    public static func regularizer(
        _ v: UnsafeBufferPointer<Float>, beta: Float, weight: Float, gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        var total = 0.0
        for i in v.indices {
            let h = rectifiedSigmoid(v[i]), d = 2 * h - 1, a = abs(d)
            total += 1 - Double(pow(a, beta))
            // d/dv (1 − |2h − 1|^β) = −β |2h − 1|^(β−1) sign(2h − 1) · 2 h'(v)
            if a > 0 {
                let dh = rectifiedSigmoidDerivative(v[i])
                gradient[i] += weight * -beta * pow(a, beta - 1) * (d > 0 ? 1 : -1) * 2 * dh
            }
        }
        return total
    }

    private static func sigmoid(_ v: Float) -> Float { 1 / (1 + exp(-v)) }
}

/// How long and how hard AdaRound learns one layer's rounding, and the annealing of its regulariser.
public struct AdaRoundSchedule: Sendable, Equatable, Codable {
    /// Adam steps on the rounding variables.
    public var iterations = 2000
    /// The fraction of the iterations without the regulariser, before `β` starts (AdaRound's 20%).
    public var warmup = 0.2
    /// `β` at the end of the warm-up and at the last iteration (AdaRound's 20 and 2), linear in between.
    public var startBeta: Float = 20, endBeta: Float = 2
    /// The regulariser's weight `λ` (AdaRound's 0.01).
    public var regularizerWeight: Float = 0.01
    /// Adam's step size on `v` (PyTorch's default, as AdaRound and BRECQ use).
    public var learningRate: Float = 1e-3
    /// Calibration samples per step, drawn at random each step.
    public var batchSize = 32

    /// The defaults above.
    public init() {}

    /// `β` at `iteration` (0-based), or nil during the warm-up, when the regulariser is off.
    public func beta(at iteration: Int) -> Float? {
        let t = Double(iteration) / Double(max(iterations, 1))
        guard t >= warmup else { return nil }
        let progress = warmup < 1 ? (t - warmup) / (1 - warmup) : 1
        return endBeta + (startBeta - endBeta) * Float(max(0, 1 - progress))
    }

    /// Throws for settings AdaRound cannot run with.
    public func validate() throws(QuantizationError) {
        guard iterations >= 1, batchSize >= 1 else {
            throw .invalidReconstruction("iterations and batch size must be at least 1")
        }
        guard (0...1).contains(warmup), startBeta > 0, endBeta > 0, regularizerWeight >= 0, learningRate > 0,
            [warmup, Double(startBeta), Double(endBeta), Double(regularizerWeight), Double(learningRate)].allSatisfy(
                \.isFinite)
        else { throw .invalidReconstruction("warm-up in [0, 1], positive β, weight and learning rate") }
    }
}

extension AdaRound {
    /// Learns the rounding of one convolution or linear layer's weights: `layer` as it is in `model`, its
    /// weights quantized per output channel by `quantizers`, so that its outputs on `inputs` (`[N, input shape]`,
    /// what the layer reads) match `targets` (`N` times the output shape's elements, the full-precision outputs, in
    /// any shape, e.g. `Evaluation.logits`'s `[N, elements]`), by the squared error summed over output channels
    /// and averaged over samples and positions (BRECQ's reconstruction loss, to which the regulariser's weight 0.01
    /// is matched). Returns the weights on the grid, and that error for nearest rounding and for the learned one on
    /// all of `inputs`. (A one-layer ``BlockReconstruction``.)
    public static func reconstruct(
        _ layer: Node, of model: Model, quantizers: [UniformQuantizer], inputs: Tensor, targets: Tensor,
        schedule: AdaRoundSchedule = AdaRoundSchedule(), seed: UInt64 = 0,
        progress: ((_ iteration: Int, _ loss: Double) -> Void)? = nil
    ) throws -> (weights: Tensor, nearestError: Double, learnedError: Double) {
        guard layer.op is Conv2dOp || layer.op is LinearOp,
            let index = model.nodes.firstIndex(where: { $0.name == layer.name })
        else {
            throw QuantizationError.invalidReconstruction("\(layer.name) is not a convolution or linear layer")
        }
        var settings = ReconstructionSettings(method: .adaRound)
        settings.rounding = schedule
        let result = try BlockReconstruction.reconstruct(
            ReconstructionBlock(layer: model.nodes[index], at: index), of: model, floatWeights: model,
            quantizers: [layer.name: quantizers], inputs: inputs, targets: targets, settings: settings, seed: seed,
            progress: progress)
        return (result.weights[layer.name]!, result.initialError, result.learnedError)
    }
}

/// One layer's learned rounding (type doc of ``AdaRound``): the weights' levels rounded down, and one variable `v`
/// per weight, started where the rectified sigmoid equals the weight's fractional part.
struct LearnedRounding {
    /// The layer's name (its weight is `<layer>.weight`).
    let layer: String
    let shape: Shape
    let quantizers: [UniformQuantizer]
    /// Weights per output channel.
    let size: Int
    /// The float weights, and their levels rounded down.
    let float: [Float], floors: [Float]
    var v: [Float]

    /// Rounding for `weight` (the float weights, `[out, ...]`) on one quantizer per output channel; throws when
    /// their counts differ.
    init(layer: String, weight: Tensor, quantizers: [UniformQuantizer]) throws(QuantizationError) {
        guard quantizers.count == weight.shape[0] else {
            throw .invalidReconstruction(
                "\(layer) has \(weight.shape[0]) output channels and \(quantizers.count) quantizers")
        }
        let size = weight.elementCount / weight.shape[0], w = weight.scalars
        let floors = w.indices.map { i in
            (quantizers[i / size].levelsPerUnit * w[i] - quantizers[i / size].zeroPoint).rounded(.down)
        }
        (self.layer, shape, self.quantizers, self.size) = (layer, weight.shape, quantizers, size)
        (float, self.floors) = (w, floors)
        v = w.indices.map { i in
            AdaRound.variable(
                forFraction: quantizers[i / size].levelsPerUnit * w[i] - quantizers[i / size].zeroPoint - floors[i])
        }
    }

    /// Weight `i` for the rounding `up` in [0, 1], and its derivative by `up` (0 where the level is clamped).
    @inline(__always)
    private func weight(_ i: Int, up: Float) -> (value: Float, slope: Float) {
        let q = quantizers[i / size], half = Float(1 << (q.bits - 1))
        let level = floors[i] + up, clamped = min(max(level, -half), half - 1)
        return ((clamped + q.zeroPoint) / q.levelsPerUnit, clamped == level ? 1 / q.levelsPerUnit : 0)
    }

    /// Writes the relaxed weights `w̃(h(v))` to `weights` and their slopes by `h` to `slopes`.
    func writeSoft(into weights: UnsafeMutablePointer<Float>, slopes: inout [Float]) {
        for i in v.indices { (weights[i], slopes[i]) = weight(i, up: AdaRound.rectifiedSigmoid(v[i])) }
    }

    /// The fixed rounding: up where `v ≥ 0`, down elsewhere; on the grid.
    func hard() -> Tensor { Tensor(shape: shape, scalars: v.indices.map { weight($0, up: v[$0] >= 0 ? 1 : 0).value }) }

    /// Nearest rounding, where learning starts from.
    func nearest() -> Tensor { Tensor(shape: shape, scalars: float.indices.map { quantizers[$0 / size](float[$0]) }) }

    /// Writes to `dv` the gradient by `v` of the loss whose gradient by the soft weights is `dw` (slopes from
    /// ``writeSoft(into:slopes:)``).
    func gradient(weightGradient dw: UnsafePointer<Float>, slopes: [Float], into dv: inout [Float]) {
        for i in v.indices { dv[i] = dw[i] * slopes[i] * AdaRound.rectifiedSigmoidDerivative(v[i]) }
    }
}

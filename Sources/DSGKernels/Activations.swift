import Foundation

/// Element-wise activations. Forward reads `x`, backward reads the saved forward input (or output for tanh and
/// sigmoid)
/// and accumulates `dx += dy * f'(·)`.
public enum Activation: Hashable, Sendable {
    /// `max(x, 0)`; gradient 1 where `x > 0`, else 0.
    case relu
    /// `min(max(x, 0), 6)` (MobileNetV2's); gradient 1 where `0 < x < 6`, else 0.
    case relu6
    /// `x` where `x > 0`, else `slope * x`; gradient 1 or `slope`.
    case leakyReLU(slope: Float)
    /// `tanh(x)`, computed in Double; its gradient `1 - y²` reads the forward output.
    case tanh
    /// `1 / (1 + e^-x)`, computed in Double; its gradient `y (1 - y)` reads the forward output.
    case sigmoid
    /// `min(max(alpha · x + beta, 0), 1)` (ONNX's HardSigmoid; PyTorch's `hardsigmoid` is alpha 1/6, beta 1/2);
    /// gradient `alpha` where `0 < alpha · x + beta < 1`, else 0.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `x · min(max(x / 6 + 1/2, 0), 1)` (MobileNetV3's); gradient 0 below -3, `x / 3 + 1/2` from -3 to 3
    /// (inclusive, as PyTorch), 1 above.
    case hardSwish
    /// `min(max(x, lower), upper)` (ONNX's Clip, PyTorch's `Hardtanh`); gradient 1 where `lower < x < upper`,
    /// else 0, as Hardtanh's and ReLU6's (PyTorch's `clamp` passes it at the bounds too).
    case clip(lower: Float, upper: Float)

    /// Below this many elements an activation runs on the calling thread only: waking the other cores costs
    /// more than it saves.
    static let parallelThreshold = 1 << 15

    /// `y = f(x)`, split over the cores for large buffers.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        guard count < Self.parallelThreshold else {
            return Parallel.forEachChunk(of: count, ActivationJob(activation: self, x: x, y: y, dy: nil, dx: nil))
        }
        forwardRange(x, y, 0..<count)
    }

    /// `dx += dy * f'(x)`; `x` is the forward input and `y` the forward output. Split over the cores for large
    /// buffers.
    public func backward(
        input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, outputGrad dy: UnsafePointer<Float>,
        inputGrad dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        guard count < Self.parallelThreshold else {
            return Parallel.forEachChunk(
                of: count, ActivationJob(activation: self, x: x, y: UnsafeMutablePointer(mutating: y), dy: dy, dx: dx))
        }
        backwardRange(x, y, dy, dx, 0..<count)
    }

    fileprivate func forwardRange(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        switch self {
        case .relu: for i in range { y[i] = max(x[i], 0) }
        case .relu6: for i in range { y[i] = min(max(x[i], 0), 6) }
        case .leakyReLU(let a): for i in range { y[i] = x[i] > 0 ? x[i] : a * x[i] }
        case .tanh: for i in range { y[i] = Float(Foundation.tanh(Double(x[i]))) }
        case .sigmoid: for i in range { y[i] = Float(1 / (1 + exp(-Double(x[i])))) }
        case .hardSigmoid(let a, let b): for i in range { y[i] = min(max(a * x[i] + b, 0), 1) }
        case .hardSwish: for i in range { y[i] = x[i] * min(max(x[i] / 6 + 0.5, 0), 1) }
        case .clip(let lower, let upper): for i in range { y[i] = min(max(x[i], lower), upper) }
        }
    }

    fileprivate func backwardRange(
        _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
        _ dx: UnsafeMutablePointer<Float>,
        _ range: Range<Int>
    ) {
        switch self {
        // The common cases in explicit vectors: written as a scalar select, the compiler emitted a branch per element
        // (mispredicted half the time on random signs) and 13% of a DSG iteration went here (perf, 2026-12-06).
        case .relu:
            forEachVector(range) { i in
                let keep = loadVector(x + i) .> 0
                storeVector(loadVector(dx + i) + loadVector(dy + i).replacing(with: 0, where: .!keep), dx + i)
            } scalar: { i in
                dx[i] += x[i] > 0 ? dy[i] : 0
            }
        case .relu6:
            forEachVector(range) { i in
                let v = loadVector(x + i), keep = (v .> 0) .& (v .< 6)
                storeVector(loadVector(dx + i) + loadVector(dy + i).replacing(with: 0, where: .!keep), dx + i)
            } scalar: { i in
                dx[i] += x[i] > 0 && x[i] < 6 ? dy[i] : 0
            }
        case .leakyReLU(let a): for i in range { dx[i] += x[i] > 0 ? dy[i] : a * dy[i] }
        case .tanh: for i in range { dx[i] += dy[i] * (1 - y[i] * y[i]) }
        case .sigmoid: for i in range { dx[i] += dy[i] * y[i] * (1 - y[i]) }
        case .hardSigmoid(let a, let b):
            for i in range {
                let z = a * x[i] + b
                dx[i] += z > 0 && z < 1 ? a * dy[i] : 0
            }
        case .hardSwish:
            for i in range { dx[i] += x[i] < -3 ? 0 : x[i] <= 3 ? dy[i] * (x[i] / 3 + 0.5) : dy[i] }
        case .clip(let lower, let upper):
            forEachVector(range) { i in
                let v = loadVector(x + i), keep = (v .> lower) .& (v .< upper)
                storeVector(loadVector(dx + i) + loadVector(dy + i).replacing(with: 0, where: .!keep), dx + i)
            } scalar: { i in
                dx[i] += x[i] > lower && x[i] < upper ? dy[i] : 0
            }
        }
    }
}

/// A contiguous range of elements per chunk: forward when `dx` is nil, backward otherwise.
private struct ActivationJob: ChunkJob {
    let activation: Activation
    let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    let dy: UnsafePointer<Float>?, dx: UnsafeMutablePointer<Float>?

    func run(samples elements: Range<Int>, chunk: Int) {
        if let dx, let dy {
            activation.backwardRange(x, y, dy, dx, elements)
        } else {
            activation.forwardRange(x, y, elements)
        }
    }
}

import Foundation

/// Element-wise activations. Forward reads `x`, backward reads the saved forward input (or output for tanh)
/// and accumulates `dx += dy * f'(·)`.
public enum Activation: Hashable, Sendable {
    case relu
    case relu6
    case leakyReLU(slope: Float)
    case tanh

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .relu: for i in 0..<count { y[i] = max(x[i], 0) }
        case .relu6: for i in 0..<count { y[i] = min(max(x[i], 0), 6) }
        case .leakyReLU(let a): for i in 0..<count { y[i] = x[i] > 0 ? x[i] : a * x[i] }
        case .tanh: for i in 0..<count { y[i] = Float(Foundation.tanh(Double(x[i]))) }
        }
    }

    /// `dx += dy * f'(x)`; `x` is the forward input and `y` the forward output.
    public func backward(
        input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, outputGrad dy: UnsafePointer<Float>,
        inputGrad dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        switch self {
        case .relu: for i in 0..<count where x[i] > 0 { dx[i] += dy[i] }
        case .relu6: for i in 0..<count where x[i] > 0 && x[i] < 6 { dx[i] += dy[i] }
        case .leakyReLU(let a): for i in 0..<count { dx[i] += x[i] > 0 ? dy[i] : a * dy[i] }
        case .tanh: for i in 0..<count { dx[i] += dy[i] * (1 - y[i] * y[i]) }
        }
    }
}

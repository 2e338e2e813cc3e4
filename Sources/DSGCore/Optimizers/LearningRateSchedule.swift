import Foundation

/// A learning rate as a function of the step (or epoch) count, as PyTorch's schedulers compute it.
public enum LearningRateSchedule: Sendable, Equatable {
    case constant
    /// `min + (base - min) * (1 + cos(π t / total)) / 2` (PyTorch `CosineAnnealingLR`).
    case cosine(total: Int, minimum: Float = 0)
    /// `base * factor^k`, `k` = the number of milestones `<= t` (PyTorch `MultiStepLR`).
    case multiStep(milestones: [Int], factor: Float)

    public func rate(base: Float, at t: Int) -> Float {
        switch self {
        case .constant:
            return base
        case .cosine(let total, let minimum):
            let progress = Double(min(t, total)) / Double(max(total, 1))
            return minimum + (base - minimum) * Float((1 + cos(Double.pi * progress)) / 2)
        case .multiStep(let milestones, let factor):
            let k = milestones.filter { $0 <= t }.count
            return base * Float(pow(Double(factor), Double(k)))
        }
    }
}

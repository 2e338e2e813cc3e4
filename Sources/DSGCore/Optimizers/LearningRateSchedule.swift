import Foundation

/// A learning rate as a function of the step (or epoch) count, as PyTorch's schedulers compute it.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate at every step.
    case constant
    /// `min + (base - min) * (1 + cos(π t / total)) / 2` (PyTorch `CosineAnnealingLR`).
    case cosine(total: Int, minimum: Float = 0)
    /// `base * factor^k`, `k` = the number of milestones `<= t` (PyTorch `MultiStepLR`).
    case multiStep(milestones: [Int], factor: Float)

    /// The learning rate at step (or epoch) `t`, counted from 0, for a schedule starting at `base`. The cosine stays
    /// at `minimum` after `total` steps instead of rising again as PyTorch's does.
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

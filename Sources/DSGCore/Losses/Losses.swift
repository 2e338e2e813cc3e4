import Foundation

/// Errors a loss can raise on bad input.
public enum LossError: Error, Equatable, CustomStringConvertible {
    /// A class label outside `0..<classes`.
    case labelOutOfRange(sample: Int, label: Int, classes: Int)

    /// The sample, its label and the valid range.
    public var description: String {
        switch self {
        case .labelOutOfRange(let sample, let label, let classes):
            return "sample \(sample) has label \(label), outside the model's \(classes) classes (0..<\(classes))"
        }
    }
}

/// Loss functions over raw `[N, K]` buffers. Each returns the loss value and, when a gradient buffer is given,
/// **adds** the loss's gradient with respect to its first argument into it (so it can seed a graph's backward).
/// `scale` multiplies both the returned value and the gradient, as a loss weight does (the DSG loss terms'
/// `gradientScale`, by contrast, scales only the gradient and returns the unweighted value).
public enum Losses {
    /// Mean softmax cross-entropy of `logits [N, K]` against integer `labels [N]` (PyTorch `cross_entropy`).
    ///
    /// `dlogits = (softmax(logits) - onehot(label)) / N`.
    public static func softmaxCrossEntropy(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
        gradient: UnsafeMutablePointer<Float>? = nil, scale: Float = 1
    ) throws(LossError) -> Float {
        for n in 0..<batch where labels[n] < 0 || Int(labels[n]) >= classes {
            throw .labelOutOfRange(sample: n, label: Int(labels[n]), classes: classes)
        }
        var total = 0.0
        for n in 0..<batch {
            let row = logits + n * classes
            let label = Int(labels[n])
            let logSumExp = Self.logSumExp(row, classes, temperature: 1)
            total += logSumExp - Double(row[label])
            if let gradient {
                let g = gradient + n * classes
                let factor = scale / Float(batch)
                for k in 0..<classes {
                    let p = Float(exp(Double(row[k]) - logSumExp))
                    g[k] += factor * (p - (k == label ? 1 : 0))
                }
            }
        }
        return scale * Float(total / Double(batch))
    }

    /// How a summed loss is divided.
    public enum Reduction: Sendable {
        /// Divide by the batch size (a true per-sample mean; PyTorch `reduction="batchmean"`).
        case batchMean
        /// Divide by every element, N * K (PyTorch `KLDivLoss()`'s default `"mean"`, as GDFQ and DSG use it).
        case elementMean
    }

    /// KL divergence `KL(softmax(teacher / T) ‖ softmax(student / T))`, the distillation loss of a student
    /// against a teacher at temperature `T`, as PyTorch's `kl_div(log_softmax(s / T), softmax(t / T))`.
    /// The usual `T²` factor is left to the caller.
    ///
    /// `dstudent = (softmax(student / T) - softmax(teacher / T)) / (T * divisor)`.
    public static func klDivergence(
        student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, batch: Int, classes: Int,
        temperature: Float, reduction: Reduction, gradient: UnsafeMutablePointer<Float>? = nil, scale: Float = 1
    ) -> Float {
        let divisor = Double(reduction == .batchMean ? batch : batch * classes)
        let t = Double(temperature)
        var total = 0.0
        for n in 0..<batch {
            let s = student + n * classes, q = teacher + n * classes
            let lseS = logSumExp(s, classes, temperature: temperature)
            let lseT = logSumExp(q, classes, temperature: temperature)
            for k in 0..<classes {
                let logPS = Double(s[k]) / t - lseS, logPT = Double(q[k]) / t - lseT
                let pT = exp(logPT)
                total += pT * (logPT - logPS)
                if let gradient { gradient[n * classes + k] += scale * Float((exp(logPS) - pT) / (t * divisor)) }
            }
        }
        return scale * Float(total / divisor)
    }

    /// Mean squared error over `count` elements; the gradient is with respect to `prediction`.
    public static func meanSquaredError(
        prediction: UnsafePointer<Float>, target: UnsafePointer<Float>, count: Int,
        gradient: UnsafeMutablePointer<Float>? = nil, scale: Float = 1
    ) -> Float {
        var total = 0.0
        for i in 0..<count {
            let d = Double(prediction[i]) - Double(target[i])
            total += d * d
            gradient?[i] += scale * Float(2 * d / Double(count))
        }
        return scale * Float(total / Double(count))
    }

    /// `log Σ_k exp(x_k / T)`, stabilised by the maximum, in Double.
    static func logSumExp(_ x: UnsafePointer<Float>, _ count: Int, temperature: Float) -> Double {
        let t = Double(temperature)
        var m = -Double.infinity
        for k in 0..<count { m = max(m, Double(x[k]) / t) }
        var s = 0.0
        for k in 0..<count { s += exp(Double(x[k]) / t - m) }
        return m + log(s)
    }
}

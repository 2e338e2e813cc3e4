import Foundation

extension Evaluation {
    /// The fraction of rows of `logits` (`[N, classes]`) whose label is among the `k` largest entries (ties broken
    /// toward the lower class, as `accuracy` does).
    public static func topKAccuracy(of logits: Tensor, labels: [Int32], k: Int) -> Double {
        guard !labels.isEmpty else { return 0 }
        let classes = logits.shape[1]
        precondition(
            logits.shape[0] == labels.count && labels.allSatisfy { (0..<Int32(classes)).contains($0) },
            "topKAccuracy: one label in 0..<classes per row")
        let correct = logits.scalars.withUnsafeBufferPointer { l in
            labels.indices.filter { i in
                let label = Int(labels[i]), value = l[i * classes + label]
                // Classes ranked above the label: larger, or equal and earlier.
                let above = (0..<classes).filter {
                    l[i * classes + $0] > value || (l[i * classes + $0] == value && $0 < label)
                }
                return above.count < k
            }.count
        }
        return Double(correct) / Double(labels.count)
    }

    /// The fraction of rows where two models' logits (`[N, classes]` each) pick the same class: a quantized model
    /// against its Float32 original, without labels.
    public static func agreement(_ logits: Tensor, _ reference: Tensor) -> Double {
        precondition(logits.shape == reference.shape, "agreement: logits of the same shape")
        let (n, classes) = (logits.shape[0], logits.shape[1])
        guard n > 0 else { return 0 }
        let same = logits.scalars.withUnsafeBufferPointer { a in
            reference.scalars.withUnsafeBufferPointer { b in
                (0..<n).filter {
                    predictedClass(a, sample: $0, classes: classes) == predictedClass(b, sample: $0, classes: classes)
                }.count
            }
        }
        return Double(same) / Double(n)
    }

    /// The mean over rows of KL(softmax(reference) || softmax(logits)), in nats: how far a quantized model's
    /// predicted distribution moved from the Float32 one's, computed in Double.
    public static func meanKLDivergence(of logits: Tensor, from reference: Tensor) -> Double {
        precondition(logits.shape == reference.shape, "meanKLDivergence: logits of the same shape")
        let (n, classes) = (logits.shape[0], logits.shape[1])
        guard n > 0 else { return 0 }
        func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
            let m = Double(row.max()!)
            let logSum = log(row.reduce(0.0) { $0 + exp(Double($1) - m) }) + m
            return row.map { Double($0) - logSum }
        }
        let (q, p) = (logits.scalars, reference.scalars)
        var total = 0.0
        for i in 0..<n {
            let logP = logSoftmax(p[(i * classes)..<((i + 1) * classes)])
            let logQ = logSoftmax(q[(i * classes)..<((i + 1) * classes)])
            for k in 0..<classes { total += exp(logP[k]) * (logP[k] - logQ[k]) }
        }
        return total / Double(n)
    }
}

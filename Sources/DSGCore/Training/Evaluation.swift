/// Top-1 accuracy of a classifier on labelled images, in evaluation mode.
public enum Evaluation {
    /// The fraction of `data` whose largest logit is the label. Runs batches of `batchSize` (the last batch
    /// may be smaller); `progress` gets the number of images done after each batch.
    public static func accuracy(
        of model: Model, on data: LabeledImages, batchSize: Int = 100, progress: ((Int) -> Void)? = nil
    ) throws -> Double {
        guard data.count > 0 else { return 0 }
        return accuracy(
            of: try logits(of: model, on: data.images, batchSize: batchSize, progress: progress), labels: data.labels)
    }

    /// The model's logits `[N, classes]` on `images` (`[N, shape...]`), in batches of `batchSize`; `progress` gets
    /// the number of images done after each batch.
    public static func logits(
        of model: Model, on images: Tensor, batchSize: Int = 100, progress: ((Int) -> Void)? = nil
    ) throws -> Tensor {
        let count = images.shape.rank > 0 ? images.shape[0] : 0
        let classes = model.shape(of: model.outputs[0]).elementCount
        var scalars = [Float](repeating: 0, count: count * classes)
        guard count > 0 else { return Tensor(shape: [0, classes], scalars: []) }
        let batches = try BatchedInference(model: model, batchSize: min(batchSize, count), outputsOnly: true)
        try batches.forEachBatch(of: images) { executor, samples in
            executor.withValue(model.outputs[0]) { logits in
                for i in 0..<(samples.count * classes) { scalars[samples.lowerBound * classes + i] = logits[i] }
            }
            progress?(samples.upperBound)
        }
        return Tensor(shape: [count, classes], scalars: scalars)
    }

    /// The fraction of rows of `logits` (`[N, classes]`) whose largest entry is the label.
    public static func accuracy(of logits: Tensor, labels: [Int32]) -> Double {
        guard !labels.isEmpty else { return 0 }
        let classes = logits.shape[1]
        let correct = logits.scalars.withUnsafeBufferPointer { l in
            labels.indices.filter { predictedClass(l, sample: $0, classes: classes) == Int(labels[$0]) }.count
        }
        return Double(correct) / Double(labels.count)
    }

    /// The class with the largest logit of sample `sample` in a batch of `[batch, classes]` logits (the first
    /// on ties).
    package static func predictedClass(_ logits: UnsafeBufferPointer<Float>, sample: Int, classes: Int) -> Int {
        var best = 0
        for k in 1..<classes where logits[sample * classes + k] > logits[sample * classes + best] { best = k }
        return best
    }
}

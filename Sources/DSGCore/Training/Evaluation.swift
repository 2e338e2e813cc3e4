/// Top-1 accuracy of a classifier on labelled images, in evaluation mode.
public enum Evaluation {
    /// The fraction of `data` whose largest logit is the label. Runs batches of `batchSize` (the last batch
    /// may be smaller); `progress` gets the number of images done after each batch.
    public static func accuracy(
        of model: Model, on data: LabeledImages, batchSize: Int = 100, progress: ((Int) -> Void)? = nil
    ) throws -> Double {
        guard data.count > 0 else { return 0 }
        let classes = model.shape(of: model.outputs[0]).elementCount
        var correct = 0
        let batches = try BatchedInference(model: model, batchSize: min(batchSize, data.count))
        try batches.forEachBatch(of: data.images) { executor, samples in
            executor.withValue(model.outputs[0]) { logits in
                for (i, s) in samples.enumerated()
                where predictedClass(logits, sample: i, classes: classes) == Int(data.labels[s]) {
                    correct += 1
                }
            }
            progress?(samples.upperBound)
        }
        return Double(correct) / Double(data.count)
    }

    /// The class with the largest logit of sample `sample` in a batch of `[batch, classes]` logits (the first
    /// on ties).
    package static func predictedClass(_ logits: UnsafeBufferPointer<Float>, sample: Int, classes: Int) -> Int {
        var best = 0
        for k in 1..<classes where logits[sample * classes + k] > logits[sample * classes + best] { best = k }
        return best
    }
}

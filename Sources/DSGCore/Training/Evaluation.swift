/// Top-1 accuracy of a classifier on labelled images, in evaluation mode.
public enum Evaluation {
    /// The fraction of `data` whose largest logit is the label. Runs batches of `batchSize` (the last batch
    /// may be smaller); `progress` gets the number of images done after each batch.
    public static func accuracy(
        of model: Model, on data: LabeledImages, batchSize: Int = 100, progress: ((Int) -> Void)? = nil
    ) throws -> Double {
        let full = try GraphExecutor(model: model, batchSize: min(batchSize, max(data.count, 1)), backward: false)
        let remainder = data.count % full.batchSize
        let tail = remainder > 0 ? try GraphExecutor(model: model, batchSize: remainder, backward: false) : nil
        let sample = data.sampleShape.elementCount
        let classes = model.shape(of: model.outputs[0]).elementCount
        var correct = 0, start = 0
        while start < data.count {
            let executor = data.count - start >= full.batchSize ? full : tail!
            let n = executor.batchSize
            executor.withInput(0) { input in
                data.images.withUnsafeBufferPointer { images in
                    input.baseAddress!.update(from: images.baseAddress! + start * sample, count: n * sample)
                }
            }
            try executor.run(training: false)
            executor.withValue(model.outputs[0]) { logits in
                for i in 0..<n where predictedClass(logits, sample: i, classes: classes) == Int(data.labels[start + i]) { correct += 1 }
            }
            start += n
            progress?(start)
        }
        return data.count == 0 ? 0 : Double(correct) / Double(data.count)
    }

    /// The class with the largest logit of sample `sample` in a batch of `[batch, classes]` logits (the first
    /// on ties).
    public static func predictedClass(_ logits: UnsafeBufferPointer<Float>, sample: Int, classes: Int) -> Int {
        var best = 0
        for k in 1..<classes where logits[sample * classes + k] > logits[sample * classes + best] { best = k }
        return best
    }
}

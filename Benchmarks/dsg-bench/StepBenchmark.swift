import DSGCore

/// One full training step of ResNet-20: forward in training mode, cross-entropy, backward, SGD.
struct StepResult: Codable {
    let batch: Int
    let milliseconds: Double
    let imagesPerSecond: Double
    let forwardMilliseconds: Double
    let backwardMilliseconds: Double
    let optimizerMilliseconds: Double
}

enum StepBenchmark {
    static func resnet20(batch: Int, minimumTime: Double) throws -> StepResult {
        let model = try ResNet.resnet20()
        let executor = GraphExecutor(model: model, batchSize: batch)
        var rng = SeededGenerator(seed: 1)
        let x = rng.normalTensor([batch, 1, 28, 28])
        let labels = (0..<batch).map { _ in Int32(rng.integer(in: 0..<10)) }
        let sgd = SGD(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4)
        let output = model.outputs[0]
        let clock = ContinuousClock()
        var phases = (forward: [Double](), backward: [Double](), optimizer: [Double]())
        let total = try Harness.median(warmup: 2, repetitions: 5, minimumTime: minimumTime) {
            let t0 = clock.now
            try executor.forward([x], training: true)
            let t1 = clock.now
            executor.zeroGradients()
            let grad = executor.gradient(of: output)
            _ = executor.withValue(output) { logits in
                Losses.softmaxCrossEntropy(logits: logits.baseAddress!, labels: labels, batch: batch, classes: 10, gradient: grad.baseAddress!)
            }
            executor.backward()
            let t2 = clock.now
            sgd.step(executor)
            let t3 = clock.now
            phases.forward.append(Harness.seconds(t1 - t0))
            phases.backward.append(Harness.seconds(t2 - t1))
            phases.optimizer.append(Harness.seconds(t3 - t2))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] * 1000 }
        return StepResult(
            batch: batch, milliseconds: total * 1000, imagesPerSecond: Double(batch) / total,
            forwardMilliseconds: median(phases.forward), backwardMilliseconds: median(phases.backward),
            optimizerMilliseconds: median(phases.optimizer))
    }
}

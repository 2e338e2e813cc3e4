import CMallocCounter
import DSGCore
import DSGKernels

/// One full training step of ResNet-20: forward in training mode, cross-entropy, backward, SGD.
struct StepResult: Codable {
    let batch: Int
    let milliseconds: Double
    let imagesPerSecond: Double
    let forwardMilliseconds: Double
    let backwardMilliseconds: Double
    let optimizerMilliseconds: Double
    /// Heap allocations made by one step after the warm-up steps (all threads); see Docs/PERFORMANCE.md.
    let allocationsPerStep: Int
    /// How many of those OpenBLAS's `sgemm` makes itself: the step's GEMM calls replayed one by one.
    let allocationsInsideSGEMM: Int
}

enum StepBenchmark {
    /// Replays, once each, the GEMM shapes a training step of `model` issues (per sample and group: forward,
    /// backward-data, backward-weight of every convolution) and counts the allocations OpenBLAS makes.
    static func sgemmAllocations(_ model: Model, batch: Int) -> Int {
        let scratch = Buffer(4_000_000)
        var total = 0
        for node in model.nodes {
            guard let op = node.op as? Conv2dOp else { continue }
            let g = op.geometry
            let (m, n, k) = (g.groupOutChannels, g.outputPlane, g.groupPatchSize)
            let p = scratch.pointer
            for (ta, tb, mm, nn, kk) in [
                (Conv2D.forwardTransposesWeights(g) ? Transpose.transposed : .none, Transpose.none, m, n, k),
                (.transposed, .none, k, n, m), (.none, .transposed, m, k, n),
            ] {
                let before = dsg_allocation_count()
                BLAS.sgemm(
                    ta, tb, m: mm, n: nn, k: kk, a: p, lda: ta == .none ? kk : mm, b: p + 1_000_000,
                    ldb: tb == .none ? nn : kk, c: p + 2_000_000, ldc: nn)
                total += (dsg_allocation_count() - before) * batch * g.groups
            }
        }
        return total
    }

    static func resnet20(batch: Int, minimumTime: Double) throws -> StepResult {
        let model = try ResNet.resnet20()
        let executor = try GraphExecutor(model: model, batchSize: batch)
        var rng = SeededRandom(seed: 1)
        let x = rng.normalTensor([batch, 1, 28, 28])
        let labels = (0..<batch).map { _ in Int32(rng.integer(in: 0..<10)) }
        let inputs = [x]
        let sgd = SGD(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4)
        let output = model.outputs[0]
        let clock = ContinuousClock()
        // One step, returning the seconds spent in forward, backward (with the loss) and the optimizer.
        func step() throws -> (Double, Double, Double) {
            let t0 = clock.now
            try executor.forward(inputs, training: true)
            let t1 = clock.now
            executor.zeroGradients()
            let grad = executor.gradient(of: output)
            _ = try executor.withValue(output) { logits in
                try Losses.softmaxCrossEntropy(
                    logits: logits.baseAddress!, labels: labels, batch: batch, classes: 10, gradient: grad.baseAddress!)
            }
            executor.backward()
            let t2 = clock.now
            sgd.step(executor)
            let t3 = clock.now
            return (Harness.seconds(t1 - t0), Harness.seconds(t2 - t1), Harness.seconds(t3 - t2))
        }
        var phases = (forward: [Double](), backward: [Double](), optimizer: [Double]())
        let total = try Harness.median(warmup: 2, repetitions: 5, minimumTime: minimumTime) {
            let (f, b, o) = try step()
            phases.forward.append(f)
            phases.backward.append(b)
            phases.optimizer.append(o)
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] * 1000 }
        // Allocations of ten more steps, after the timed ones warmed everything up.
        let before = dsg_allocation_count()
        for _ in 0..<10 { _ = try step() }
        let allocations = (dsg_allocation_count() - before) / 10
        return StepResult(
            batch: batch, milliseconds: total * 1000, imagesPerSecond: Double(batch) / total,
            forwardMilliseconds: median(phases.forward), backwardMilliseconds: median(phases.backward),
            optimizerMilliseconds: median(phases.optimizer), allocationsPerStep: allocations,
            allocationsInsideSGEMM: sgemmAllocations(model, batch: batch))
    }
}

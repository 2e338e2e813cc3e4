import CMallocCounter
import DSG

/// One DSG iteration on ResNet-20 (1x28x28, batch 64, preset `dsg`): forward, every loss term, backward to the
/// images, Adam step; its split by phase, the generation throughput at the preset's 500 iterations per batch,
/// and heap allocations per iteration.
struct DSGIterationResult: Codable {
    let batch: Int
    let milliseconds: Double
    let forwardMilliseconds: Double, batchNormLossesMilliseconds: Double, backwardMilliseconds: Double
    let imageTermsMilliseconds: Double, optimizerMilliseconds: Double
    /// Images per minute at 500 iterations per batch.
    let imagesPerMinute: Double
    let allocationsPerIteration: Int
}

enum DSGBenchmark {
    static func measure(iterations: Int) throws -> DSGIterationResult {
        let model = try Harness.resnet20WithStatistics()
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.batchSize, configuration.iterations) = (64, 64, iterations)
        let run = try DSG.generateSamples(from: model, configuration: configuration)
        let t = run.timing, n = Double(iterations)
        // Allocations per iteration: counted inside one run, between the ends of iterations 2 and 12 (set-up
        // before the loop and the work after it are left out).
        var long = configuration
        long.iterations = 12
        var counts = [Int](repeating: 0, count: 13)
        _ = try DSG.generateSamples(from: model, configuration: long) { done, _ in counts[done] = dsg_allocation_count()
        }
        let perIteration = (counts[12] - counts[2]) / 10
        return DSGIterationResult(
            batch: 64, milliseconds: 1000 * t.total / n,
            forwardMilliseconds: 1000 * t.forward / n, batchNormLossesMilliseconds: 1000 * t.batchNormLosses / n,
            backwardMilliseconds: 1000 * t.backward / n, imageTermsMilliseconds: 1000 * t.imageTerms / n,
            optimizerMilliseconds: 1000 * t.optimizer / n,
            imagesPerMinute: 64 / (500 * t.total / n) * 60, allocationsPerIteration: perIteration)
    }
}

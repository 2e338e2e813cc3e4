import CMallocCounter
import DSG

/// One QAT iteration on ResNet-20 (1x28x28, batch 64, DSG generator loss, W4A4, student updating): generator
/// step and student step, split by phase, and heap allocations per iteration after the first.
struct QATIterationResult: Codable {
    let batch: Int
    let milliseconds: Double
    let generatorForwardMilliseconds: Double, teacherMilliseconds: Double, generatorBackwardMilliseconds: Double
    let studentMilliseconds: Double
    let allocationsPerIteration: Int
}

enum QATBenchmark {
    static func measure(iterations: Int) throws -> QATIterationResult {
        let teacher = try Harness.resnet20WithStatistics()
        func trainer(_ n: Int) throws -> QATTrainer {
            var c = QATConfiguration(weightBits: 4, activationBits: 4, generatorLoss: .dsg)
            (c.epochs, c.iterationsPerEpoch, c.batchSize, c.warmupEpochs) = (1, n, 64, 0)
            return try QATTrainer(teacher: teacher, configuration: c)
        }
        // Timing after one warm-up iteration (first steps make optimiser state).
        let timed = try trainer(iterations + 1)
        var first: QATTiming?
        try timed.train { p in if p.iteration == 1 { first = timed.timing } }
        let t = timed.timing, f = first!, n = Double(iterations)
        // Allocations per iteration: counted inside one run, between the ends of iterations 2 and 12.
        var counts = [Int](repeating: 0, count: 13)
        try trainer(12).train { p in counts[p.iteration] = dsg_allocation_count() }
        let perIteration = (counts[12] - counts[2]) / 10
        func ms(_ a: Double, _ b: Double) -> Double { 1000 * (a - b) / n }
        return QATIterationResult(
            batch: 64, milliseconds: ms(t.total, f.total),
            generatorForwardMilliseconds: ms(t.generatorForward, f.generatorForward),
            teacherMilliseconds: ms(t.teacher, f.teacher),
            generatorBackwardMilliseconds: ms(t.generatorBackward, f.generatorBackward),
            studentMilliseconds: ms(t.student, f.student), allocationsPerIteration: perIteration)
    }
}

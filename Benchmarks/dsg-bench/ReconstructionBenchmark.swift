import CMallocCounter
import DSG
import Foundation

/// Block reconstruction (QDrop, which does everything BRECQ does and draws its drops too) of the embedded
/// ResNet-20 at W4A4 on 256 Gaussian calibration images, batch 32: one iteration of its largest block
/// (`stage1.block0`: forward of the quantized block, loss, backward to the rounding variables and step sizes, both
/// Adam steps), its heap allocations per iteration, and the wall time of the whole reconstruction (11 blocks) at
/// `iterations` steps per block.
struct ReconstructionIterationResult: Codable {
    let block: String, batch: Int, calibrationImages: Int, iterationsPerBlock: Int
    let milliseconds: Double
    let allocationsPerIteration: Int
    let wholeReconstructionSeconds: Double
}

enum ReconstructionBenchmark {
    static func measure(iterations: Int) throws -> ReconstructionIterationResult {
        let model = try DSG.defaultModel()
        var random = SeededRandom(seed: 9)
        let images = random.normalTensor([256, 1, 28, 28])
        var configuration = PTQConfiguration(weightBits: 4, activationBits: 4)
        configuration.reconstruction = ReconstructionSettings(method: .qDrop)
        configuration.reconstruction?.rounding.iterations = iterations
        let block = "stage1.block0"
        let clock = ContinuousClock()
        var times: [ContinuousClock.Instant] = [], counts: [Int] = []
        // Room for every step, so that recording one allocates nothing inside the counted span.
        times.reserveCapacity(iterations)
        counts.reserveCapacity(iterations)
        let start = clock.now
        _ = try PTQCalibrator(configuration: configuration).quantize(model, calibration: images) { p in
            guard p.block == block else { return }
            times.append(clock.now)
            counts.append(dsg_allocation_count())
        }
        let whole = Harness.seconds(clock.now - start)
        guard times.count == iterations, iterations >= 4 else {
            throw QuantizationError.invalidReconstruction("the benchmark heard \(times.count) steps of \(block)")
        }
        // Steps after the second: the first ones make the optimisers' state.
        let steps = zip(times.dropFirst(2), times.dropFirst(3)).map { Harness.seconds($1 - $0) }.sorted()
        return ReconstructionIterationResult(
            block: block, batch: configuration.reconstruction!.rounding.batchSize, calibrationImages: 256,
            iterationsPerBlock: iterations, milliseconds: 1000 * steps[steps.count / 2],
            allocationsPerIteration: (counts[counts.count - 1] - counts[2]) / (counts.count - 3),
            wholeReconstructionSeconds: whole)
    }
}

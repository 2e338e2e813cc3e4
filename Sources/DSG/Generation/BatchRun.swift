import DSGCore
import DSGKernels
import Foundation

/// The batches of one generation run and what they have made so far, shared by the lanes that make them.
///
/// With at least as many batches to go as kernel threads, ``DSG/generateSamples(from:configuration:checkpoint:progress:)``
/// makes one batch per thread at once, each lane on one thread (``Parallel/serially(_:)``), instead of splitting
/// each batch over the cores: a ResNet-20 batch of 8 is too small to split well, and two lanes make twice the
/// batches (Docs/PERFORMANCE.md). With fewer batches than threads, or lanes that would not fit in half the
/// memory, each batch is split as before: lanes would leave cores idle. A batch's result does not depend on
/// which lane made it or when, so the set is the same. The lock orders everything the lanes share: the next batch to take, the finished batches, the
/// caller's progress calls and the checkpoint, which holds the finished batches in order from the first.
final class BatchRun: @unchecked Sendable {
    let configuration: GenerationConfiguration
    let batchSize: Int, batches: Int
    let sample: Shape
    private let lock = NSLock()
    private var next: Int
    /// Batches finished out of order, waiting for the ones before them.
    private var waiting: [Int: (images: Tensor, terms: LossTerms, timing: GenerationTiming)] = [:]
    private var images: [Float], terms: [LossTerms], timing = GenerationTiming()
    private let earlierSeconds: Double, start = Date()
    private var iterationsDone: Int
    private let progress: (Int, Int) throws -> Void
    private let checkpoint: URL?
    /// The first error of any lane (or of the caller's progress); the other lanes stop at their next iteration.
    private(set) var failure: (any Error)?

    /// Thrown inside a lane when another lane has failed.
    private struct Stopped: Error {}

    /// A run of `optimizer`'s batches continuing after `earlier` (a checkpoint's set, if any).
    init(
        _ optimizer: SampleOptimizer, earlier: SampleSet?, checkpoint: URL?,
        progress: @escaping (Int, Int) throws -> Void
    ) {
        (configuration, batchSize, batches) = (optimizer.configuration, optimizer.batchSize, optimizer.batchCount)
        sample = optimizer.inputShape
        images = earlier?.images.scalars ?? []
        terms = earlier?.losses ?? []
        earlierSeconds = earlier?.seconds ?? 0
        next = terms.count
        iterationsDone = terms.count * optimizer.configuration.iterations
        (self.checkpoint, self.progress) = (checkpoint, progress)
    }

    /// The batches not made yet.
    var remaining: Int { batches - terms.count }

    /// How many lanes to run: one per kernel thread when there are at least as many batches to make and that
    /// many lanes of `bytesPerLane` fit in half the machine's memory, else one.
    static func lanes(remaining: Int, bytesPerLane: Int) -> Int {
        let threads = Parallel.threadCount
        let fit = Int(ProcessInfo.processInfo.physicalMemory / 2) / max(bytesPerLane, 1)
        return threads > 1 && remaining >= threads && fit >= threads ? threads : 1
    }

    /// Makes every remaining batch: with one optimiser on the calling thread (each batch split over the cores),
    /// with several one lane per optimiser, each on a thread of its own. Sets ``failure`` rather than throwing.
    func make(with optimizers: [SampleOptimizer]) {
        guard optimizers.count > 1 else {
            if let only = optimizers.first { lane(only) }
            return
        }
        lanes = optimizers
        DispatchQueue.concurrentPerform(iterations: optimizers.count) { lane in
            Parallel.serially { self.lane(self.lanes[lane]) }
        }
        lanes = []
    }

    /// The optimisers of ``make(with:)``'s lanes, one each; read by the lane threads only after it is set.
    private var lanes: [SampleOptimizer] = []

    /// Makes batches with `optimizer` until none is left or a lane has failed.
    private func lane(_ optimizer: SampleOptimizer) {
        while let b = take() {
            do {
                var reported = 0
                let batch = try optimizer.makeBatch(b) { done in
                    try report(iterations: done - reported)
                    reported = done
                }
                try finish(b, batch)
            } catch {
                fail(error)
                return
            }
        }
    }

    /// The set of the batches finished in order so far.
    func set() -> SampleSet {
        lock.withLock { unlockedSet() }
    }

    private func take() -> Int? {
        lock.withLock {
            guard failure == nil, next < batches else { return nil }
            next += 1
            return next - 1
        }
    }

    private func report(iterations: Int) throws {
        try lock.withLock {
            guard failure == nil else { throw Stopped() }
            iterationsDone += iterations
            try progress(iterationsDone, batches * configuration.iterations)
        }
    }

    private func finish(_ b: Int, _ batch: (images: Tensor, terms: LossTerms, timing: GenerationTiming)) throws {
        try lock.withLock {
            waiting[b] = batch
            var appended = false
            while let ready = waiting.removeValue(forKey: terms.count) {
                images += ready.images.scalars
                terms.append(ready.terms)
                timing = timing + ready.timing
                appended = true
            }
            if appended, let checkpoint { try unlockedSet().save(to: checkpoint) }
        }
    }

    private func fail(_ error: any Error) {
        lock.withLock {
            if failure == nil && !(error is Stopped) { failure = error }
        }
    }

    private func unlockedSet() -> SampleSet {
        let n = min(images.count / sample.elementCount, configuration.count)
        return SampleSet(
            images: Tensor(shape: sample.batched(n), scalars: Array(images.prefix(n * sample.elementCount))),
            configuration: configuration, batchSize: batchSize, losses: terms,
            seconds: earlierSeconds + Date().timeIntervalSince(start), timing: timing)
    }
}

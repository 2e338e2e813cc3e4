import DSGCore
import DSGKernels
import Foundation

/// Makes a list of a generation run's batches, one lane per kernel thread at once when there are enough of them.
///
/// Each lane runs on one thread (``Parallel/serially(_:)``) with its own optimiser; every lane but the first has
/// its own copy of the model (binding a tensor may copy it, which must not race), instead of one batch at a time split over the cores: a
/// ResNet-20 batch of 8 is too small to split well, and two lanes make twice the batches (Docs/PERFORMANCE.md).
/// Lanes run only when there are at least as many batches as kernel threads and that many lanes fit in half the
/// machine's memory; otherwise fewer lanes would leave cores idle, and each batch is split as before. A batch's
/// result does not depend on which lane made it or when. `DSG.generateSamples` and `dsg-mpi`'s ranks both make
/// their batches here.
package final class BatchLanes: @unchecked Sendable {
    /// One finished batch: its images, last loss terms and where its time went.
    package typealias Batch = (images: Tensor, terms: LossTerms, timing: GenerationTiming)

    // The lock orders everything the lanes share: the batches left, and the caller's two callbacks.
    private let lock = NSLock()
    private var left: ArraySlice<Int>
    private let progress: (Int) throws -> Void
    private let finished: (Int, Batch) throws -> Void
    private var failure: (any Error)?
    /// The lanes' optimisers while ``make(model:optimizer:)`` runs them: stored here because Dispatch's closure
    /// may capture only Sendable values, and this class is the one that orders access.
    private var optimizers: [SampleOptimizer] = []

    /// Thrown inside a lane when another lane has failed.
    private struct Stopped: Error {}

    /// Lanes for `batches` (indices into the run). `progress` gets the iterations each lane has just done, and
    /// `finished` each batch as it is done (in any order); both are called one at a time, and an error thrown
    /// by either stops the run.
    package init(
        batches: [Int], progress: @escaping (Int) throws -> Void = { _ in },
        finished: @escaping (Int, Batch) throws -> Void
    ) {
        (left, self.progress, self.finished) = (batches[...], progress, finished)
    }

    /// Makes every batch with `optimizer` (on `model`) and, when lanes run, one more optimiser per extra lane
    /// on a copy of the model; throws the first error of any lane once all have stopped.
    package func make(model: Model, optimizer: SampleOptimizer) throws {
        let threads = Parallel.threadCount
        let bytesPerLane = optimizer.executor.allocatedBytes + 4 * model.parameterCount
        let fit = Int(ProcessInfo.processInfo.physicalMemory / 2) / max(bytesPerLane, 1)
        if threads > 1 && left.count >= threads && fit >= threads {
            optimizers =
                try [optimizer]
                + (1..<threads).map { _ in
                    try SampleOptimizer(model: model.copy(), configuration: optimizer.configuration)
                }
            DispatchQueue.concurrentPerform(iterations: threads) { lane in
                Parallel.serially { self.lane(self.optimizers[lane]) }
            }
            optimizers = []
        } else {
            lane(optimizer)
        }
        if let failure { throw failure }
    }

    /// Makes batches with `optimizer` until none is left or a lane has failed.
    private func lane(_ optimizer: SampleOptimizer) {
        while let b = take() {
            do {
                var reported = 0
                let batch = try optimizer.makeBatch(b) { done in
                    try lock.withLock {
                        guard failure == nil else { throw Stopped() }
                        try progress(done - reported)
                    }
                    reported = done
                }
                try lock.withLock { try finished(b, batch) }
            } catch {
                lock.withLock { if failure == nil && !(error is Stopped) { failure = error } }
                return
            }
        }
    }

    private func take() -> Int? {
        lock.withLock { failure == nil ? left.popFirst() : nil }
    }
}

import DSGKernels
import Foundation
import Synchronization
import Testing

@Suite("Batch parallelism")
struct ParallelTests {
    @Test func chunksCoverTheBatchOnce() {
        let seen = Mutex<[Int]>([])
        Parallel.forEachChunk(of: 11) { samples, _ in seen.withLock { $0 += Array(samples) } }
        #expect(seen.withLock { $0.sorted() } == Array(0..<11))
    }

    /// While the pool is busy (here: a job started from inside another job), a job still runs every one of its
    /// chunks with the usual ranges, one after another; kernels rely on each chunk's private scratch.
    @Test func busyPoolStillRunsEveryChunk() {
        let inner = Mutex<[String]>([])
        Parallel.forEachChunk(of: 2) { _, _ in
            Parallel.forEachChunk(of: 5) { samples, chunk in inner.withLock { $0.append("\(chunk):\(samples)") } }
        }
        let expected = (0..<Parallel.chunkCount(5)).map { k in
            "\(k):\((k * 5 / Parallel.chunkCount(5))..<((k + 1) * 5 / Parallel.chunkCount(5)))"
        }
        let outerChunks = Parallel.chunkCount(2)
        #expect(
            inner.withLock { $0.sorted() } == Array(repeating: expected, count: outerChunks).flatMap { $0 }.sorted())
    }
}

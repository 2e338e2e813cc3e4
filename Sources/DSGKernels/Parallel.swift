import Dispatch
import Foundation
internal import COpenBLAS

/// Batch parallelism for the kernels. On a small machine the best use of the cores is one sample range per
/// core, each doing its own im2col and a single-threaded GEMM, so OpenBLAS is switched to one thread the
/// first time a kernel runs (its own threads would otherwise compete with ours for the same cores).
public enum Parallel {
    /// Worker threads the kernels use; by default the number of active cores.
    nonisolated(unsafe) public static var threadCount = ProcessInfo.processInfo.activeProcessorCount

    private static let singleThreadedBLAS: Void = { openblas_set_num_threads(1) }()

    /// The number of chunks a batch of `count` samples is split into.
    public static func chunkCount(_ count: Int) -> Int { max(1, min(threadCount, count)) }

    /// Calls `body(range, chunk)` for `chunkCount(count)` contiguous ranges covering `0..<count`, concurrently.
    public static func forEachChunk(of count: Int, _ body: (Range<Int>, Int) -> Void) {
        _ = singleThreadedBLAS
        let chunks = chunkCount(count)
        guard chunks > 1 else {
            body(0..<count, 0)
            return
        }
        // The chunks touch disjoint samples (the callers guarantee it), so sharing `body` across threads is safe.
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { k in
                shared.value((k * count / chunks)..<((k + 1) * count / chunks), k)
            }
        }
    }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

internal import CDSGKernels
internal import COpenBLAS
import Dispatch
import Foundation

/// Work on a range of samples, run by ``Parallel/forEachChunk(of:_:)`` once per chunk.
public protocol ChunkJob {
    /// Processes `samples`; `chunk` (0 ..< chunk count) selects the chunk's private scratch.
    func run(samples: Range<Int>, chunk: Int)
}

extension ChunkJob {
    /// Runs the job stored at `job`; lets the worker pool call a job through its metatype without boxing it.
    fileprivate static func run(at job: UnsafeRawPointer, samples: Range<Int>, chunk: Int) {
        job.assumingMemoryBound(to: Self.self).pointee.run(samples: samples, chunk: chunk)
    }
}

/// Batch parallelism for the kernels. On a small machine the best use of the cores is one sample range per
/// core, each doing its own im2col and a single-threaded GEMM, so OpenBLAS is switched to one thread the
/// first time a kernel runs (its own threads would otherwise compete with ours for the same cores).
///
/// Jobs are structs run on long-lived threads woken by semaphores. Neither Dispatch's `concurrentPerform` nor
/// a closure handed to another thread would do: both allocate on every call, and a training step must not.
public enum Parallel {
    /// Worker threads the kernels use, fixed at first use: ``requestedThreadCount`` when set (`dsg-mpi` sets it
    /// so that the ranks on one machine share its cores), else ``availableCores()``.
    public static let threadCount = requestedThreadCount ?? availableCores()

    /// `DSG_THREADS` from the environment when it is a positive number, else nil.
    public static var requestedThreadCount: Int? {
        ProcessInfo.processInfo.environment["DSG_THREADS"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }

    /// The cores this process may run on: the active cores (which respect a container's CPU quota), or fewer
    /// when the affinity mask holds fewer (on Linux: `taskset`, or `mpirun` binding a rank to a core).
    public static func availableCores() -> Int {
        let active = ProcessInfo.processInfo.activeProcessorCount, mask = Int(dsg_available_cores())
        return mask > 0 ? min(mask, active) : active
    }

    private static let pool: WorkerPool = {
        openblas_set_num_threads(1)
        return WorkerPool(workers: threadCount - 1)
    }()

    /// The number of chunks a batch of `count` samples is split into.
    public static func chunkCount(_ count: Int) -> Int { max(1, min(threadCount, count)) }

    /// Runs `job` on `chunkCount(count)` contiguous ranges covering `0..<count`, concurrently; returns when all
    /// are done. Chunks must touch disjoint memory. If another thread is already running a parallel job, the
    /// same chunks run one after another on the calling thread, so results never depend on which happened.
    public static func forEachChunk<Job: ChunkJob>(of count: Int, _ job: Job) {
        withUnsafePointer(to: job) { pointer in
            pool.run(count: count, chunks: chunkCount(count), job: UnsafeRawPointer(pointer), type: Job.self)
        }
    }

    /// Runs `body` with every kernel it calls running on this thread alone, its chunks one after another (with
    /// the same results): for callers that keep the cores busy themselves, such as sample generation making one
    /// batch per core. Nests; other threads are not affected.
    public static func serially<R>(_ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(serialKey)
        pthread_setspecific(serialKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(serialKey, previous) }
        return try body()
    }

    /// Whether the calling thread is inside ``serially(_:)``.
    static var isSerial: Bool { pthread_getspecific(serialKey) != nil }

    /// The thread-local flag behind ``serially(_:)``: checked on every kernel call, so a pthread key rather than
    /// anything that allocates.
    private static let serialKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The closure form, for code outside hot loops: it allocates a closure context on every call.
    public static func forEachChunk(of count: Int, _ body: (Range<Int>, Int) -> Void) {
        withoutActuallyEscaping(body) { forEachChunk(of: count, ClosureJob(body: $0)) }
    }
}

private struct ClosureJob: ChunkJob {
    let body: (Range<Int>, Int) -> Void
    func run(samples: Range<Int>, chunk: Int) { body(samples, chunk) }
}

/// Long-lived worker threads; chunk 0 of every job runs on the calling thread.
private final class WorkerPool: @unchecked Sendable {
    private let start: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)
    private let busy = NSLock()
    // Written by the caller before the workers are signalled, read by them after: the semaphores order it.
    private var job: UnsafeRawPointer?
    private var type: (any ChunkJob.Type)?
    private var count = 0, chunks = 1

    init(workers: Int) {
        start = (0..<max(workers, 0)).map { _ in DispatchSemaphore(value: 0) }
        for worker in start.indices {
            let thread = Thread { [unowned self] in self.serve(chunk: worker + 1) }
            thread.name = "dsg-kernels-\(worker + 1)"
            thread.start()
        }
    }

    private func range(_ chunk: Int) -> Range<Int> { (chunk * count / chunks)..<((chunk + 1) * count / chunks) }

    private func serve(chunk: Int) {
        while true {
            start[chunk - 1].wait()
            if let job, let type { type.run(at: job, samples: range(chunk), chunk: chunk) }
            finished.signal()
        }
    }

    func run(count: Int, chunks: Int, job: UnsafeRawPointer, type: any ChunkJob.Type) {
        guard chunks > 1, start.count >= chunks - 1, !Parallel.isSerial, busy.try() else {
            // Same chunks, one after another: callers rely on every chunk's private scratch being filled, and
            // the results stay bit-identical to a parallel run.
            for chunk in 0..<chunks {
                type.run(at: job, samples: (chunk * count / chunks)..<((chunk + 1) * count / chunks), chunk: chunk)
            }
            return
        }
        defer { busy.unlock() }
        (self.job, self.type, self.count, self.chunks) = (job, type, count, chunks)
        for worker in 0..<(chunks - 1) { start[worker].signal() }
        type.run(at: job, samples: range(0), chunk: 0)
        for _ in 0..<(chunks - 1) { finished.wait() }
        (self.job, self.type) = (nil, nil)
    }
}

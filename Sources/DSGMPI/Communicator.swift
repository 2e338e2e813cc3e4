internal import CMPI

/// Why an MPI call failed.
public enum MPIError: Error, Equatable, CustomStringConvertible {
    /// An MPI function returned an error code: the function, the code and MPI's own text for it.
    case call(function: String, code: Int32, message: String)
    /// A buffer too large for one MPI call (MPI counts are 32-bit).
    case tooLarge(function: String, count: Int)
    /// The MPI library cannot run beside other threads, as the kernels' worker threads do (it offers less than
    /// MPI_THREAD_FUNNELED).
    case noThreadSupport

    /// The function and MPI's reason.
    public var description: String {
        switch self {
        case .call(let function, let code, let message): return "\(function) failed (MPI error \(code)): \(message)"
        case .tooLarge(let function, let count): return "\(function): \(count) elements exceed one MPI call's limit"
        case .noThreadSupport:
            return "this MPI library offers no thread support (MPI_THREAD_FUNNELED), which the kernels' threads need"
        }
    }
}

/// The processes of one MPI run (MPI's world communicator), wrapped once: rank and size, barrier, broadcast,
/// all-reduce in place and gather of byte buffers of any size. Every call is collective: each rank must make
/// the same calls in the same order.
///
/// MPI is started on first use with thread support "funneled": only the thread that started it calls MPI
/// (the kernels' worker threads never do). MPI's errors are set to return codes, which become ``MPIError``s,
/// instead of aborting the run without a word.
public final class Communicator: @unchecked Sendable {
    /// This process's rank, `0 ..< size`.
    public let rank: Int
    /// The number of processes.
    public let size: Int
    /// Wall time spent inside the collectives of a data-parallel run (``DataParallelGroup``), waiting for the
    /// slower ranks included.
    public internal(set) var dataParallelSeconds = 0.0
    let comm: MPI_Comm

    /// The world communicator; starts MPI in this process on the first call. A process not started by `mpirun`
    /// (or a scheduler's launcher) is a world of one.
    public static func world() throws(MPIError) -> Communicator {
        if let shared = World.shared { return shared }
        var initialized: Int32 = 0
        try check("MPI_Initialized", MPI_Initialized(&initialized))
        if initialized == 0 {
            var provided: Int32 = 0
            try check("MPI_Init_thread", MPI_Init_thread(nil, nil, dsg_mpi_thread_funneled(), &provided))
            guard provided >= dsg_mpi_thread_funneled() else { throw .noThreadSupport }
        }
        let comm: MPI_Comm = dsg_mpi_comm_world()!  // the address of a library global, never null
        try check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(comm, dsg_mpi_errors_return()))
        var rank: Int32 = 0, size: Int32 = 0
        try check("MPI_Comm_rank", MPI_Comm_rank(comm, &rank))
        try check("MPI_Comm_size", MPI_Comm_size(comm, &size))
        let world = Communicator(comm: comm, rank: Int(rank), size: Int(size))
        World.shared = world
        return world
    }

    private init(comm: MPI_Comm, rank: Int, size: Int) {
        (self.comm, self.rank, self.size) = (comm, rank, size)
    }

    /// Returns once every rank has called it.
    public func barrier() throws(MPIError) {
        try Self.check("MPI_Barrier", MPI_Barrier(comm))
    }

    /// Rank `root`'s bytes, on every rank (each rank's own `bytes` are replaced; only the root's are read).
    public func broadcast(_ bytes: [UInt8], from root: Int = 0) throws(MPIError) -> [UInt8] {
        var count = Int64(bytes.count)
        try Self.check("MPI_Bcast", MPI_Bcast(&count, 1, dsg_mpi_int64(), Int32(root), comm))
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count))
        let n = try Self.count("MPI_Bcast", result.count)
        let code = result.withUnsafeMutableBytes { MPI_Bcast($0.baseAddress, n, dsg_mpi_byte(), Int32(root), comm) }
        try Self.check("MPI_Bcast", code)
        return result
    }

    /// Rank `root`'s `value`, on every rank.
    public func broadcast(_ value: Int, from root: Int = 0) throws(MPIError) -> Int {
        var v = Int64(value)
        try Self.check("MPI_Bcast", MPI_Bcast(&v, 1, dsg_mpi_int64(), Int32(root), comm))
        return Int(v)
    }

    /// Replaces `values` on every rank by their element-wise sum over the ranks.
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws(MPIError) {
        let n = try Self.count("MPI_Allreduce", values.count)
        try Self.check(
            "MPI_Allreduce",
            MPI_Allreduce(dsg_mpi_in_place(), values.baseAddress, n, dsg_mpi_float(), dsg_mpi_sum(), comm))
    }

    /// Replaces `values` on every rank by their element-wise sum over the ranks.
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws(MPIError) {
        let n = try Self.count("MPI_Allreduce", values.count)
        try Self.check(
            "MPI_Allreduce",
            MPI_Allreduce(dsg_mpi_in_place(), values.baseAddress, n, dsg_mpi_double(), dsg_mpi_sum(), comm))
    }

    /// The largest of `value` over the ranks, on every rank.
    public func allReduceMax(_ value: Int) throws(MPIError) -> Int {
        var v = Int64(value)
        try Self.check("MPI_Allreduce", MPI_Allreduce(dsg_mpi_in_place(), &v, 1, dsg_mpi_int64(), dsg_mpi_max(), comm))
        return Int(v)
    }

    /// Replaces `values` on every rank by their element-wise maximum over the ranks.
    public func allReduceMax(_ values: UnsafeMutableBufferPointer<Float>) throws(MPIError) {
        let n = try Self.count("MPI_Allreduce", values.count)
        try Self.check(
            "MPI_Allreduce",
            MPI_Allreduce(dsg_mpi_in_place(), values.baseAddress, n, dsg_mpi_float(), dsg_mpi_max(), comm))
    }

    /// Every rank's `share`, one after another in rank order, into `all` on every rank; rank `r`'s share holds
    /// `counts[r]` values (every rank passes the same counts) and `all` their sum.
    public func allGather(
        _ share: UnsafeBufferPointer<Float>, into all: UnsafeMutableBufferPointer<Float>, counts: [Int]
    ) throws(MPIError) {
        precondition(
            counts.count == size && share.count == counts[rank] && all.count == counts.reduce(0, +),
            "Communicator.allGather: counts do not match the buffers.")
        var receiveCounts: [Int32] = [], offsets: [Int32] = [], total = 0
        for c in counts {
            offsets.append(try Self.count("MPI_Allgatherv", total))
            receiveCounts.append(try Self.count("MPI_Allgatherv", c))
            total += c
        }
        try Self.check(
            "MPI_Allgatherv",
            MPI_Allgatherv(
                share.baseAddress, receiveCounts[rank], dsg_mpi_float(), all.baseAddress, &receiveCounts, &offsets,
                dsg_mpi_float(), comm))
    }

    /// Every rank's bytes, in rank order, on rank `root`; an empty array on the others. The buffers may differ in
    /// size.
    public func gather(_ bytes: [UInt8], to root: Int = 0) throws(MPIError) -> [[UInt8]] {
        var count = Int64(bytes.count)
        var counts = [Int64](repeating: 0, count: rank == root ? size : 1)
        try Self.check(
            "MPI_Gather", MPI_Gather(&count, 1, dsg_mpi_int64(), &counts, 1, dsg_mpi_int64(), Int32(root), comm))
        let sendCount = try Self.count("MPI_Gatherv", bytes.count)
        guard rank == root else {
            let code = bytes.withUnsafeBytes {
                MPI_Gatherv($0.baseAddress, sendCount, dsg_mpi_byte(), nil, nil, nil, dsg_mpi_byte(), Int32(root), comm)
            }
            try Self.check("MPI_Gatherv", code)
            return []
        }
        var receiveCounts: [Int32] = [], offsets: [Int32] = []
        var total = 0
        for c in counts {
            offsets.append(try Self.count("MPI_Gatherv", total))
            receiveCounts.append(try Self.count("MPI_Gatherv", Int(c)))
            total += Int(c)
        }
        var all = [UInt8](repeating: 0, count: total)
        let code = bytes.withUnsafeBytes { send in
            all.withUnsafeMutableBytes { receive in
                MPI_Gatherv(
                    send.baseAddress, sendCount, dsg_mpi_byte(), receive.baseAddress, &receiveCounts, &offsets,
                    dsg_mpi_byte(), Int32(root), comm)
            }
        }
        try Self.check("MPI_Gatherv", code)
        return zip(offsets, receiveCounts).map { Array(all[Int($0)..<Int($0) + Int($1)]) }
    }

    /// Stops every rank of the run with `code` (MPI_Abort): for a rank that cannot go on, after it has said why.
    public func abort(code: Int32 = 1) -> Never {
        MPI_Abort(comm, code)
        fatalError("MPI_Abort returned")
    }

    /// Ends MPI in this process (MPI_Finalize), once every rank is done with it.
    public static func finalize() {
        if World.shared != nil { MPI_Finalize() }
    }

    static func check(_ function: String, _ code: Int32) throws(MPIError) {
        guard code != MPI_SUCCESS else { return }
        var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        _ = MPI_Error_string(code, &text, &length)
        throw .call(
            function: function, code: code,
            message: String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private static func count(_ function: String, _ n: Int) throws(MPIError) -> Int32 {
        guard let c = Int32(exactly: n) else { throw .tooLarge(function: function, count: n) }
        return c
    }
}

/// The one world communicator of the process, made by ``Communicator/world()`` on its first call.
private enum World {
    nonisolated(unsafe) static var shared: Communicator?
}

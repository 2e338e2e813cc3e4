internal import CMPI
import DSGKernels
import Foundation

extension Communicator {
    /// How many ranks of this run share this machine (MPI's shared-memory split of the world).
    public func ranksOnThisMachine() throws(MPIError) -> Int {
        var local: MPI_Comm? = nil
        try Self.check(
            "MPI_Comm_split_type",
            MPI_Comm_split_type(comm, dsg_mpi_comm_type_shared(), Int32(rank), dsg_mpi_info_null(), &local))
        defer { MPI_Comm_free(&local) }
        var size: Int32 = 0
        try Self.check("MPI_Comm_size", MPI_Comm_size(local, &size))
        return Int(size)
    }

    /// Splits this machine's cores between its ranks for the kernels, unless `DSG_THREADS` is already set:
    /// `DSG_THREADS` becomes the smaller of the cores this rank may run on and the machine's cores over its ranks,
    /// at least one. Collective (every rank must call it); must run before any kernel does, since the thread
    /// count is fixed at first use. Ranks bound to overlapping cores (several per socket, say) still share them.
    public func shareCores() throws(MPIError) -> Int {
        let local = try ranksOnThisMachine()
        if let requested = Parallel.requestedThreadCount { return requested }
        let machine = ProcessInfo.processInfo.activeProcessorCount
        let threads = max(1, min(Parallel.availableCores(), machine / local))
        setenv("DSG_THREADS", String(threads), 1)
        return threads
    }
}

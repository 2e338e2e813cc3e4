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
    /// `DSG_THREADS` becomes the cores this rank may run on, over the ranks here when the launcher did not bind
    /// each rank to its own cores, at least one. Must run before any kernel does: the thread count is fixed at
    /// first use.
    public func shareCores() throws(MPIError) -> Int {
        if let set = ProcessInfo.processInfo.environment["DSG_THREADS"], let n = Int(set), n > 0 { return n }
        let mine = Parallel.availableCores(), machine = ProcessInfo.processInfo.activeProcessorCount
        // A rank bound to a share of the cores has that share already; an unbound one divides the machine.
        let threads = mine < machine ? mine : max(1, machine / (try ranksOnThisMachine()))
        setenv("DSG_THREADS", String(threads), 1)
        return threads
    }
}

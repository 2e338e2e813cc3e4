import DSGCore
import Foundation

/// The ranks of an MPI run as a data-parallel group, for `QATTrainer(group:)`: its sums, maxima and gathers are
/// MPI's all-reduce and all-gather. A collective MPI fails ends the run: this rank says why, naming itself, and
/// MPI stops every rank (the others are waiting inside the same collective and could not go on either).
extension Communicator: DataParallelGroup {
    /// MPI_Allreduce with MPI_SUM.
    public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        collective { () throws(MPIError) in try allReduceSum(values) }
    }

    /// MPI_Allreduce with MPI_SUM.
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) {
        collective { () throws(MPIError) in try allReduceSum(values) }
    }

    /// MPI_Allreduce with MPI_MAX.
    public func maximum(_ values: UnsafeMutableBufferPointer<Float>) {
        collective { () throws(MPIError) in try allReduceMax(values) }
    }

    /// MPI_Allgatherv.
    public func gather(_ share: UnsafeBufferPointer<Float>, into all: UnsafeMutableBufferPointer<Float>, counts: [Int])
    {
        collective { () throws(MPIError) in try allGather(share, into: all, counts: counts) }
    }

    /// Runs one collective, timing it; a failure ends the run.
    private func collective(_ body: () throws(MPIError) -> Void) {
        let start = ContinuousClock.now
        do { try body() } catch {
            FileHandle.standardError.write(Data("dsg-mpi: rank \(rank) of \(size): error: \(error)\n".utf8))
            abort(code: 1)
        }
        dataParallelSeconds += (ContinuousClock.now - start).inSeconds
    }
}

import DSGKernels

/// The processes of a data-parallel run, each holding one share of every batch, and the collective operations
/// that combine what the shares computed. `DSGMPI`'s `Communicator` is one (the ranks of an MPI run).
///
/// Every process must make the same calls in the same order with buffers of the same sizes. The calls do not
/// throw: a process that cannot complete one has left the others waiting inside it, so a group ends the whole
/// run when a collective fails, as an MPI job does (after saying which process and why).
public protocol DataParallelGroup: AnyObject {
    /// This process's place in the group, `0 ..< size`.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Adds every process's `values` elementwise, leaving the totals in each process's buffer.
    func sum(_ values: UnsafeMutableBufferPointer<Double>)
    /// Adds every process's `values` elementwise, leaving the totals in each process's buffer.
    func sum(_ values: UnsafeMutableBufferPointer<Float>)
    /// The elementwise maximum over the processes, left in each process's buffer.
    func maximum(_ values: UnsafeMutableBufferPointer<Float>)
    /// Every process's `share` one after another in rank order, into `all`; `counts[r]` is the length of
    /// rank `r`'s share, and `all` holds their sum.
    func gather(_ share: UnsafeBufferPointer<Float>, into all: UnsafeMutableBufferPointer<Float>, counts: [Int])
}

extension DataParallelGroup {
    /// The samples of a batch of `batch` that `rank` holds (this process's by default): contiguous ranges in
    /// rank order whose sizes differ by at most one, the larger first.
    public func share(of batch: Int, rank: Int? = nil) -> Range<Int> {
        let r = rank ?? self.rank, base = batch / size, extra = batch % size
        let start = r * base + min(r, extra)
        return start..<(start + base + (r < extra ? 1 : 0))
    }

    /// How synchronised BatchNorm sees this group, for a batch of `batch` samples in all.
    public func sharing(ofBatch batch: Int) -> BatchNorm.Sharing {
        BatchNorm.Sharing(samples: batch) { self.sum($0) }
    }
}

extension GraphExecutor {
    /// Adds every process's parameter gradients, so each holds the whole batch's gradient before its optimiser
    /// steps (the shares' losses being their parts of the batch's).
    public func sumParameterGradients(over group: DataParallelGroup) {
        // One call: the gradients share one block (the padding between them stays zero).
        group.sum(parameterGradients)
    }
}

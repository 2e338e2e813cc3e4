import DSG
import Foundation

/// Quantization-aware training spread over the ranks of an MPI run, data-parallel: each rank trains its share
/// of every batch (``QATTrainer`` with the world as its ``DataParallelGroup``), and every rank keeps the same
/// generator and student, those of one process training on the whole batch up to float rounding. Rank 0 writes
/// the checkpoint after every epoch; a run started again with the same command, on any number of ranks,
/// continues from it.
public enum DistributedQAT {
    /// This rank's trainer for `configuration`'s run on `teacher`, checkpointing to `checkpoint`. Every rank must
    /// call it with the same arguments; it first checks that they did (a hash of the configuration, the teacher's
    /// fingerprint and the checkpoint path as given) and that the checkpoint's folder is shared. A rank that
    /// throws here or later has left the others waiting in a collective call: the caller must then stop the run
    /// (``Communicator/abort(code:)``), as `dsg-mpi` does.
    public static func trainer(
        teacher: Model, configuration: QATConfiguration, checkpoint: URL, world: Communicator
    ) throws -> QATTrainer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try world.checkSameArguments([
            String(decoding: try encoder.encode(configuration), as: UTF8.self), teacher.fingerprint,
            checkpoint.relativePath,
        ])
        try world.checkShared(checkpoint.deletingLastPathComponent())
        return try QATTrainer(teacher: teacher, configuration: configuration, group: world)
    }
}

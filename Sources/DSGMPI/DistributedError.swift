import Foundation

/// Why a run spread over MPI ranks cannot go on. The rank that finds it says so; `dsg-mpi` then stops them all.
public enum DistributedError: Error, Equatable, CustomStringConvertible {
    /// This rank was started with other options or another model than rank 0 (their hashes differ).
    case differentOptions(rank: Int)
    /// This rank cannot see the file rank 0 wrote into a folder every rank writes to: it is not shared.
    case folderNotShared(folder: String, rank: Int)

    /// What differs, and which rank found it.
    public var description: String {
        switch self {
        case .differentOptions(let rank):
            return "rank \(rank) was started with other options or another model than rank 0; "
                + "every rank must run the same command"
        case .folderNotShared(let folder, let rank):
            return "rank \(rank) cannot see rank 0's files in \(folder): the folder must be shared by every rank "
                + "(a network file system on a cluster)"
        }
    }
}

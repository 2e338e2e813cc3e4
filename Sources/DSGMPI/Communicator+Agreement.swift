import DSG
import DSGKernels
import Foundation

/// The checks every distributed command makes before any work: that all ranks run the same command, and that
/// they see the same files.
extension Communicator {
    /// Throws ``DistributedError/differentOptions(rank:)`` on every rank whose `arguments` (with the package
    /// version and the convolution setting, which change the rounding too) hash differently from rank 0's.
    public func checkSameArguments(_ arguments: [String]) throws {
        let identity = (arguments + [DSG.version, "fast paths \(Conv2D.usesFastPaths)"]).joined(separator: "\n")
        let mine = withUnsafeBytes(of: Self.fnv1a(Array(identity.utf8)).littleEndian) { Array($0) }
        let rootHash = try broadcast(mine, from: 0)
        guard rootHash == mine else { throw DistributedError.differentOptions(rank: rank) }
    }

    /// Rank 0 writes a file only this run knows of into `folder` (made if missing); every other rank must read
    /// it back there, or throws ``DistributedError/folderNotShared(folder:rank:)``. The file is removed once
    /// every rank has looked.
    public func checkShared(_ folder: URL) throws {
        var token: [UInt8] = []
        if rank == 0 {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            token = Array(UUID().uuidString.utf8)
        }
        token = try broadcast(token, from: 0)
        let file = folder.appendingPathComponent(".dsg-mpi-" + String(decoding: token, as: UTF8.self))
        if rank == 0 { try Data(token).write(to: file, options: .atomic) }
        try barrier()
        let seen = (try? Data(contentsOf: file)).map(Array.init) == token
        try barrier()
        if rank == 0 { try? FileManager.default.removeItem(at: file) }
        if !seen { throw DistributedError.folderNotShared(folder: folder.path, rank: rank) }
    }

    /// The 64-bit FNV-1a hash: the same bytes give the same hash on every machine.
    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}

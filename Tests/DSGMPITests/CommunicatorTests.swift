import DSGTestSupport
import Foundation
import Testing

/// `Communicator`'s collectives under `mpirun -np 2`, through `mpi-probe` (Tests/MPIProbe), which calls each
/// once with values that depend on the rank and prints what it got.
@Suite("MPI collectives", .serialized)
struct CommunicatorTests {
    @Test func everyCollectiveGivesEachRankWhatMPIPromises() throws {
        let folder = try TemporaryFolder()
        let run = try MPIRun.launch(MPIRun.probe, ranks: 2, in: folder)
        #expect(run.status == 0, "\(run.errors)")
        let ranks = run.output.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: String]
        }.sorted { ($0["rank"] ?? "") < ($1["rank"] ?? "") }
        try #require(ranks.count == 2, "\(run.output)")
        for (r, rank) in ranks.enumerated() {
            #expect(rank["rank"] == "\(r)" && rank["size"] == "2")
            #expect(rank["broadcast"] == "from rank 1!" && rank["broadcastInt"] == "11")
            #expect(rank["floatSum"] == "3.0 1.0 -1.0")
            #expect(rank["doubleSum"] == "1.5 2e-300")
            #expect(rank["max"] == "7")
            #expect(rank["floatMax"] == "1.0 -0.5")
            #expect(rank["allGather"] == "0.5 1.5 1.5")
            #expect(rank["badRoot"]?.hasPrefix("MPI_Bcast failed (MPI error") == true, "\(rank["badRoot"] ?? "none")")
        }
        #expect(ranks[0]["gather"] == "0|1,1")
        #expect(ranks[1]["gather"] == "")
    }
}

import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGMPI

/// `dsg-mpi generate` under `mpirun -np 2` on this one machine (loopback; `.ci/setup.sh` installs Open MPI):
/// the samples are the single process's bit for bit, finished batches are kept, and bad set-ups stop with the
/// rank that found them.
@Suite("Generation over MPI ranks", .serialized)
struct DistributedGenerationTests {
    /// Three batches of two: rank 0 makes batches 0 and 2, rank 1 batch 1.
    static let options = ["--count", "6", "--batch-size", "2", "--iterations", "2", "--seed", "5"]

    static func configuration() -> GenerationConfiguration {
        var c = GenerationConfiguration(preset: .dsg)
        (c.count, c.batchSize, c.iterations, c.seed) = (6, 2, 2, 5)
        return c
    }

    @Test func twoRanksWriteTheSingleProcessSamples() throws {
        let folder = try TemporaryFolder()
        let run = try MPIRun.launch(ranks: 2, Self.options + MPIRun.outputs(in: folder), in: folder)
        #expect(run.status == 0, "\(run.errors)")
        let distributed = try SampleSet.load(from: folder.file("samples.safetensors"))
        let single = try DSG.generateSamples(from: DSG.defaultModel(), configuration: Self.configuration())
        #expect(distributed.images.shape == [6, 1, 28, 28])
        // Compared as one Bool: a failure should not print 4,704 floats twice.
        let sameImages = distributed.images.scalars == single.images.scalars
        #expect(sameImages, "the images differ from the single process's")
        #expect(distributed.losses == single.losses)
        #expect(distributed.configuration == single.configuration && distributed.batchSize == 2)
        // The report names each batch's rank; the parts are gone once the set is written.
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.file("samples.json")))
        let batches = ((report as? [String: Any])?["batches"] as? [[String: Any]]) ?? []
        #expect(batches.map { $0["rank"] as? Int } == [0, 1, 0])
        #expect(!FileManager.default.fileExists(atPath: folder.file("samples.safetensors.parts").path))
    }

    @Test func finishedBatchesAreKeptWhicheverRankMadeThem() throws {
        let folder = try TemporaryFolder()
        // Batch 1 as an interrupted run left it, with a marker in its loss terms: kept, it shows in the output.
        let optimizer = try SampleOptimizer(model: DSG.defaultModel(), configuration: Self.configuration())
        var (images, terms, _) = try optimizer.makeBatch(1) { _ in }
        terms.total = 12345
        images[0] = 0.5
        let parts = DistributedGeneration.partsFolder(for: folder.file("samples.safetensors"))
        try FileManager.default.createDirectory(at: parts, withIntermediateDirectories: true)
        try SampleSet(images: images, configuration: Self.configuration(), batchSize: 2, losses: [terms], seconds: 1)
            .save(to: parts.appendingPathComponent("batch-000001.safetensors"))
        let run = try MPIRun.launch(ranks: 2, Self.options + MPIRun.outputs(in: folder), in: folder)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output.contains("rank 1: batch 1 kept from an earlier run"))
        let set = try SampleSet.load(from: folder.file("samples.safetensors"))
        #expect(set.losses[1].total == 12345 && set.images[2 * 28 * 28] == 0.5)
    }

    @Test func aBatchLeftByAnotherModelIsRefusedByName() throws {
        // Same options, other image shape: kept, it would have been mixed into the set.
        let folder = try TemporaryFolder()
        let parts = DistributedGeneration.partsFolder(for: folder.file("samples.safetensors"))
        try FileManager.default.createDirectory(at: parts, withIntermediateDirectories: true)
        try SampleSet(
            images: Tensor(shape: [2, 1, 8, 8]), configuration: Self.configuration(), batchSize: 2,
            losses: [LossTerms()], seconds: 1
        ).save(to: parts.appendingPathComponent("batch-000001.safetensors"))
        let run = try MPIRun.launch(ranks: 2, Self.options + MPIRun.outputs(in: folder), in: folder)
        #expect(run.status != 0)
        #expect(
            run.errors.contains(
                "rank 1 of 2: error: batch-000001.safetensors holds samples of shape [2, 1, 8, 8], the model takes"),
            "\(run.errors)")
        #expect(!FileManager.default.fileExists(atPath: folder.file("samples.safetensors").path))
    }

    @Test func aKilledRankStopsTheRunAndTheRerunKeepsEveryFinishedBatch() throws {
        // Eight batches of two, long enough that a rank can be killed once the first batch is saved.
        let options = ["--count", "16", "--batch-size", "2", "--iterations", "20", "--seed", "7"]
        let folder = try TemporaryFolder()
        let parts = DistributedGeneration.partsFolder(for: folder.file("samples.safetensors"))
        let killed = try MPIRun.launch(ranks: 2, options + MPIRun.outputs(in: folder), in: folder) {
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, MPIRun.batchFiles(in: parts).isEmpty {
                Thread.sleep(forTimeInterval: 0.05)
            }
            // The rank started last; mpirun then names it and stops the other.
            if let rank = MPIRun.rankProcesses(in: folder).max() { kill(rank, SIGKILL) }
        }
        #expect(killed.status != 0)
        #expect(killed.errors.contains("exited on signal 9"), "\(killed.errors)")
        #expect(!FileManager.default.fileExists(atPath: folder.file("samples.safetensors").path))
        let finished = MPIRun.batchFiles(in: parts)
        #expect(!finished.isEmpty && finished.count < 8, "\(finished)")

        let rerun = try MPIRun.launch(ranks: 2, options + MPIRun.outputs(in: folder), in: folder)
        #expect(rerun.status == 0, "\(rerun.errors)")
        #expect(rerun.output.components(separatedBy: "kept from an earlier run").count - 1 == finished.count)
        var configuration = Self.configuration()
        (configuration.count, configuration.iterations, configuration.seed) = (16, 20, 7)
        let single = try DSG.generateSamples(from: DSG.defaultModel(), configuration: configuration)
        let set = try SampleSet.load(from: folder.file("samples.safetensors"))
        let sameImages = set.images.scalars == single.images.scalars
        #expect(sameImages && set.losses == single.losses, "the rerun's samples differ from the single process's")
    }

    @Test func ranksWithDifferentOptionsStopTheRun() throws {
        let folder = try TemporaryFolder()
        let outputs = MPIRun.outputs(in: folder)
        let run = try MPIRun.launch(
            [Self.options + outputs, Self.options + ["--learning-rate", "0.2"] + outputs], in: folder)
        #expect(run.status != 0)
        #expect(run.errors.contains("rank 1 of 2: error: rank 1 was started with other options"), "\(run.errors)")
        #expect(!FileManager.default.fileExists(atPath: folder.file("samples.safetensors").path))
    }

    @Test func anOutputFolderNotSharedByTheRanksIsNamed() throws {
        // Each rank in a folder of its own, writing the same relative path: rank 1 cannot see rank 0's files.
        let folder = try TemporaryFolder()
        let (first, second) = (folder.file("node0"), folder.file("node1"))
        for f in [first, second] { try FileManager.default.createDirectory(at: f, withIntermediateDirectories: true) }
        let run = try MPIRun.launch(
            [Self.options, Self.options], in: folder, workingFolders: [first.path, second.path])
        #expect(run.status != 0)
        #expect(run.errors.contains("rank 1 cannot see rank 0's files"), "\(run.errors)")
    }

    @Test func startedWithoutMPIRunItRunsAsOneProcess() throws {
        let folder = try TemporaryFolder()
        let run = try MPIRun.run(
            MPIRun.executable, ["generate"] + Self.options + MPIRun.outputs(in: folder), in: folder)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output.contains("one rank: running as a single process"))
        let single = try DSG.generateSamples(from: DSG.defaultModel(), configuration: Self.configuration())
        let sameImages =
            try SampleSet.load(from: folder.file("samples.safetensors")).images.scalars == single.images.scalars
        #expect(sameImages, "the images differ from the single process's")
    }

    @Test func theOptionHashSeesEveryByte() {
        #expect(Communicator.fnv1a([]) == 0xcbf2_9ce4_8422_2325)
        #expect(Communicator.fnv1a(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(Communicator.fnv1a([1, 2]) != Communicator.fnv1a([2, 1]))
    }
}

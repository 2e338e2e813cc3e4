import DSG
import DSGTestSupport
import Foundation
import Testing

@testable import DSGMPI

/// `dsg-mpi quantize --method qat` under `mpirun -np 2` follows `dsg quantize --method qat` with the same
/// options: a small 8x8 teacher (ONNX), batches of 64, one iteration per epoch so that each epoch's losses in
/// the checkpoint are one iteration's.
///
/// The generator learns at 1e-4, not the default 1e-3: at 1e-3 this teacher's run amplifies rounding
/// differences (as the embedded model's run does, Docs/CLUSTER.md), so that even one process with one kernel
/// thread and with two (whose sums differ in order) drift apart by about 2e-3 within 20 iterations. At 1e-4 the test checks that those two agree to 1e-6,
/// so that the ranks' 1e-4 is a bound on faults, not on rounding.
@Suite("QAT over MPI ranks", .serialized)
struct DistributedQATTests {
    /// Writes the teacher and six labelled 8x8 images (the test set) into `folder`.
    static func prepare(_ folder: TemporaryFolder) throws {
        try ONNXExport.write(try TestModels.batchNormNetwork(side: 8), to: folder.file("teacher.onnx"))
        let images = folder.file("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for i in 0..<6 {
            let pixels = (0..<64).map { UInt8(($0 * 37 + i * 91) % 256) }
            try PNG.encode(pixels: pixels, width: 8, height: 8, channels: 1)
                .write(to: images.appendingPathComponent("image_\(i)_\(i % 3).png"))
        }
    }

    static func options(epochs: Int, checkpoint: String, seed: Int = 3) -> [String] {
        [
            "--method", "qat", "--model", "teacher.onnx", "--images", "images", "--epochs", "\(epochs)",
            "--iterations-per-epoch", "1", "--qat-batch-size", "64", "--warmup-epochs", "1", "--calibration-epochs",
            "3", "--qat-seed", "\(seed)", "--generator-learning-rate", "1e-4", "--checkpoint", checkpoint, "--output",
            checkpoint + ".quantized.safetensors",
        ]
    }

    /// Each epoch's generator and student losses, from a checkpoint.
    static func losses(_ checkpoint: URL) throws -> [[Double]] {
        let json = try #require(try Safetensors.read(checkpoint).metadata["qat"])
        let metadata = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let history = try #require(metadata?["history"] as? [[String: Any]])
        return history.map { [$0["generatorLoss"] as? Double ?? .nan, $0["studentLoss"] as? Double ?? .nan] }
    }

    /// `dsg-mpi quantize` on two ranks for `epochs`, checkpointing to mpi.safetensors in `folder`.
    static func twoRanks(epochs: Int, in folder: TemporaryFolder) throws -> MPIRun.Result {
        try MPIRun.launch(
            ranks: 2, options(epochs: epochs, checkpoint: "mpi.safetensors"), command: "quantize", in: folder)
    }

    /// Runs `dsg quantize` for `epochs` in `folder` (checkpointing to single.safetensors); returns each epoch's
    /// losses of the two-rank run and of this one.
    static func againstOneProcess(epochs: Int, in folder: TemporaryFolder) throws -> (
        mpi: [[Double]], single: [[Double]]
    ) {
        let run = try MPIRun.run(
            MPIRun.dsg, ["quantize"] + options(epochs: epochs, checkpoint: "single.safetensors"), in: folder)
        #expect(run.status == 0, "\(run.errors)")
        return (try losses(folder.file("mpi.safetensors")), try losses(folder.file("single.safetensors")))
    }

    /// The largest relative difference between two runs' losses (infinity when their lengths differ).
    static func largestDifference(_ a: [[Double]], _ b: [[Double]]) -> Double {
        guard a.count == b.count else { return .infinity }
        return zip(a.joined(), b.joined()).map { abs($0 - $1) / max(abs($1), 1e-12) }.max() ?? .infinity
    }

    @Test func twoRanksFollowTheSingleProcessForTwentyIterations() throws {
        let folder = try TemporaryFolder()
        try Self.prepare(folder)
        let run = try Self.twoRanks(epochs: 20, in: folder)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output.contains("ms of them in collective calls"), "\(run.output)")
        let (mpi, single) = try Self.againstOneProcess(epochs: 20, in: folder)
        #expect(mpi.count == 20)
        #expect(Self.largestDifference(mpi, single) <= 1e-4, "\(mpi) against \(single)")
        // One process on one thread: sums in another order, and this run does not amplify that.
        let oneThread = try MPIRun.run(
            MPIRun.dsg, ["quantize"] + Self.options(epochs: 20, checkpoint: "thread.safetensors"), in: folder,
            environment: ["DSG_THREADS": "1"])
        #expect(oneThread.status == 0, "\(oneThread.errors)")
        let threads = try Self.losses(folder.file("thread.safetensors"))
        #expect(Self.largestDifference(threads, single) <= 1e-6, "\(threads) against \(single)")
        // The student learned something: its loss moved.
        #expect(Set(single.map { $0[1] }).count > 1)
        #expect(FileManager.default.fileExists(atPath: folder.file("mpi.safetensors.quantized.safetensors").path))
    }

    @Test func aRerunWithMoreEpochsContinuesFromTheCheckpoint() throws {
        let folder = try TemporaryFolder()
        try Self.prepare(folder)
        let first = try Self.twoRanks(epochs: 2, in: folder)
        #expect(first.status == 0, "\(first.errors)")
        let rerun = try Self.twoRanks(epochs: 4, in: folder)
        #expect(rerun.status == 0, "\(rerun.errors)")
        #expect(!rerun.output.contains("epoch 1/4"), "the rerun trained its first epochs again:\n\(rerun.output)")
        let (mpi, single) = try Self.againstOneProcess(epochs: 4, in: folder)
        #expect(mpi.count == 4)
        #expect(Self.largestDifference(mpi, single) <= 1e-4, "\(mpi) against \(single)")
    }

    @Test func ranksWithOtherOptionsStopBeforeTraining() throws {
        let folder = try TemporaryFolder()
        try Self.prepare(folder)
        let run = try MPIRun.launch(
            [
                Self.options(epochs: 2, checkpoint: "c.safetensors"),
                Self.options(epochs: 2, checkpoint: "c.safetensors", seed: 4),
            ],
            command: "quantize", in: folder)
        #expect(run.status != 0)
        #expect(run.errors.contains("rank 1 was started with other options"), "\(run.errors)")
        #expect(!FileManager.default.fileExists(atPath: folder.file("c.safetensors").path))
    }
}

import DSG
import DSGTestSupport
import Foundation
import Testing

/// `dsg-mpi quantize --method ptq --reconstruction qdrop` under `mpirun -np 2` learns the model that
/// `dsg quantize` learns with the same options, on the small teacher of ``DistributedQATTests``.
@Suite("Reconstruction over MPI ranks", .serialized)
struct DistributedReconstructionTests {
    static let options = [
        "--method", "ptq", "--model", "teacher.onnx", "--images", "images", "--samples", "samples.safetensors",
        "--reconstruction", "qdrop", "--reconstruction-iterations", "30", "--weight-bits", "3",
        "--activation-bits", "3",
    ]

    /// Every tensor of a quantized model file, in name order.
    static func values(_ file: URL) throws -> [Float] {
        try Safetensors.read(file).tensors.sorted { $0.name < $1.name }.flatMap(\.tensor.scalars)
    }

    @Test func twoRanksLearnTheSingleProcessModel() throws {
        let folder = try TemporaryFolder()
        try DistributedQATTests.prepare(folder)
        let samples = try MPIRun.run(
            MPIRun.dsg,
            [
                "generate", "--model", "teacher.onnx", "--count", "16", "--batch-size", "8", "--iterations", "2",
                "--output", "samples.safetensors",
            ], in: folder)
        #expect(samples.status == 0, "\(samples.errors)")
        let run = try MPIRun.launch(
            ranks: 2, Self.options + ["--checkpoint", "mpi-checkpoint.safetensors", "--output", "mpi.safetensors"],
            command: "quantize", in: folder)
        #expect(run.status == 0, "\(run.errors)")
        let single = try MPIRun.run(
            MPIRun.dsg,
            ["quantize"] + Self.options + [
                "--checkpoint", "single-checkpoint.safetensors", "--output", "single.safetensors",
            ],
            in: folder)
        #expect(single.status == 0, "\(single.errors)")
        let (mpi, one) = (
            try Self.values(folder.file("mpi.safetensors")), try Self.values(folder.file("single.safetensors"))
        )
        #expect(one.count > 100)
        expectClose(mpi, one, rtol: 1e-4, atol: 1e-6, "the two-rank model")
        // Only rank 0 wrote: the checkpoint once, the report once.
        #expect(run.output.components(separatedBy: "written to mpi.safetensors").count == 2, "\(run.output)")
    }

    @Test func plainPTQIsRefusedByName() throws {
        let folder = try TemporaryFolder()
        let run = try MPIRun.run(MPIRun.executable, ["quantize", "--samples", "s.safetensors"], in: folder)
        #expect(run.status != 0)
        #expect(run.errors.contains("plain PTQ runs in one process"), "\(run.errors)")
    }
}

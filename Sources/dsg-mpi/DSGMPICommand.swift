import ArgumentParser
import DSG
import DSGCommandLine
import DSGMPI
import Foundation

/// `dsg-mpi`: the commands of `dsg` that spread over the ranks of an MPI run (`mpirun -np N dsg-mpi ...`).
@main
struct DSGMPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsg-mpi",
        abstract: "Data-free quantization by Diverse Sample Generation, spread over MPI ranks.",
        discussion: """
            Start it with mpirun (or a scheduler's launcher, e.g. srun): mpirun -np 4 dsg-mpi generate ... \
            Started alone it runs as a single process. The ranks on one machine share its cores.
            """,
        version: DSG.version,
        subcommands: [MPIGenerateCommand.self, MPIQuantizeCommand.self])

    /// Runs `body` on this process's rank, after sharing the machine's cores among its ranks. Any rank's error
    /// stops the whole run: the rank says what it was, then MPI ends every rank.
    static func onEveryRank(_ body: (Communicator) throws -> Void) throws {
        let world: Communicator
        do { world = try Communicator.world() } catch {
            FileHandle.standardError.write(Data("dsg-mpi: cannot start MPI: \(error)\n".utf8))
            throw ExitCode.failure
        }
        do {
            let threads = try world.shareCores()
            if world.size == 1 {
                say("dsg-mpi: one rank: running as a single process, \(threads) kernel threads")
            } else if world.rank == 0 {
                say("dsg-mpi: \(world.size) ranks, \(threads) kernel threads each on this machine")
            }
            try body(world)
        } catch {
            FileHandle.standardError.write(
                Data("dsg-mpi: rank \(world.rank) of \(world.size): \(errorMessage(error))\n".utf8))
            if world.size > 1 { world.abort(code: 1) }
            throw ExitCode.failure
        }
        Communicator.finalize()
    }
}

struct MPIGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "dsg generate with its batches spread over the ranks; the same options, the same samples.",
        discussion: """
            Rank r of N makes batches r, r+N, ..., each exactly as one process makes it, so the sample file is \
            the one `dsg generate` writes with the same options, bit for bit. Each finished batch is saved at \
            once beside the output (<output>.parts/); run the same command again after an interruption and every \
            finished batch of every rank is kept. The output folder must be shared by all ranks. The report \
            lists each batch's rank and time.
            """)

    @OptionGroup var generate: GenerateCommand

    func validate() throws { try generate.validate() }

    func run() throws {
        try DSGMPICommand.onEveryRank { world in
            let model = try generate.modelOptions.load()
            let configuration = generate.generationConfiguration()
            let result = try DistributedGeneration.generate(
                from: model, configuration: configuration, output: URL(fileURLWithPath: generate.output),
                world: world
            ) { record in
                say(
                    "rank \(world.rank): batch \(record.batch) "
                        + (record.kept ? "kept from an earlier run" : String(format: "in %.1f s", record.seconds)))
            }
            if let result { try generate.finish(result.samples, model: model, batches: result.batches) }
        }
    }
}

struct MPIQuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "dsg quantize with QAT's batches, or reconstruction's steps, shared by the ranks.",
        discussion: """
            --method qat: each rank trains its share of every batch; the generator's BatchNorm and the loss see \
            the whole batch and gradients are summed over the ranks before each step. --method ptq with \
            --reconstruction: each rank computes its share of every step's batch, gradients summed likewise. \
            Either follows `dsg quantize` with the same options up to float rounding. Rank 0 writes the \
            checkpoint (its folder must be shared by all ranks), reports, and writes the quantized model; run the \
            same command again, on any number of ranks, to continue. The batch must have at least as many \
            samples as there are ranks.
            """)

    @OptionGroup var quantize: QuantizeCommand

    func validate() throws {
        guard quantize.method == .qat || quantize.reconstruction != .none else {
            throw ValidationError(
                "dsg-mpi quantize shares QAT (--method qat) or reconstruction (--reconstruction); plain PTQ runs "
                    + "in one process (dsg quantize).")
        }
        try quantize.validate()
    }

    func run() throws {
        try DSGMPICommand.onEveryRank { world in
            let trainer = try quantize.quantize(group: world) { model, settings, checkpoint in
                try world.checkSameArguments([settings, model.fingerprint, checkpoint.relativePath])
                try world.checkShared(checkpoint.deletingLastPathComponent())
            }
            if let timing = trainer?.timing, timing.iterations > 0, world.rank == 0 {
                let perIteration = { (seconds: Double) in 1000 * seconds / Double(timing.iterations) }
                say(
                    String(
                        format: "dsg-mpi: %.1f ms per iteration on rank 0, %.1f ms of them in collective calls "
                            + "(waiting for the other ranks included)",
                        perIteration(timing.total), perIteration(world.dataParallelSeconds)))
            }
        }
    }
}

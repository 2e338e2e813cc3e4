import DSG
import DSGKernels
import Foundation

/// Sample generation with its batches spread over the ranks of an MPI run.
///
/// Batches are independent (each is seeded from the configuration's seed and its index), so rank `r` of `N`
/// makes batches `r, r + N, r + 2N, ...`, each exactly as one process makes it (with a lane per kernel thread
/// when it has enough of them, as `DSG.generateSamples` does), and the set rank 0 puts
/// together is the one a single process makes with the same configuration, image for image and bit for bit.
/// Each finished batch is saved at once, atomically, as a sample-set file of its own in the parts folder beside
/// the output (`<output>.parts/batch-000003.safetensors`); a run started again with the same configuration keeps
/// every batch found there, whichever rank made it. Rank 0 writes the output once every batch is done and then
/// removes the parts.
public enum DistributedGeneration {
    /// The folder of finished batches of a run writing `output`.
    public static func partsFolder(for output: URL) -> URL {
        output.deletingLastPathComponent().appendingPathComponent(output.lastPathComponent + ".parts")
    }

    /// Generates `configuration`'s samples on the ranks of `world`, writing `output` (a sample set, as
    /// `DSG.generateSamples` writes its checkpoint). Every rank must call it with the same arguments; it first
    /// checks that they did (a hash of the configuration, the model's fingerprint, the output path as given, the
    /// package version and the convolution setting) and that the output folder is shared. `batchDone` is called on the rank that made (or kept) each of its batches,
    /// one call at a time but possibly from a lane's thread. A rank that throws has left the others waiting in a
    /// collective call: the caller must then stop the run (``Communicator/abort(code:)``), as `dsg-mpi` does.
    /// Returns the whole set and every batch's record on rank 0, nil on the others. The set's `seconds` add this
    /// run's wall time to the output's, when the output held finished batches.
    public static func generate(
        from model: Model, configuration: GenerationConfiguration, output: URL, world: Communicator,
        batchDone: (BatchTime) -> Void = { _ in }
    ) throws -> (samples: SampleSet, batches: [BatchTime])? {
        let start = Date()
        // The output as given, not resolved: ranks in different folders that name the same relative file are
        // the shared-folder check's to catch.
        try world.checkSameArguments([try configuration.metadataJSON(), model.fingerprint, output.relativePath])
        try world.checkShared(output.deletingLastPathComponent())
        let parts = partsFolder(for: output)
        try FileManager.default.createDirectory(at: parts, withIntermediateDirectories: true)
        let optimizer = try SampleOptimizer(model: model, configuration: configuration)
        // The output itself may hold finished batches: a finished run, or a single process's checkpoint. Only
        // rank 0 reads it (it may be large); the others learn how many batches it holds.
        let earlier = world.rank == 0 ? try finishedSet(output, optimizer: optimizer) : nil
        let earlierBatches = try world.broadcast(earlier?.losses.count ?? 0, from: 0)

        // This rank's batches: those finished earlier are recorded as kept, the others made in lanes.
        var mine: [BatchTime] = [], todo: [Int] = []
        for b in stride(from: world.rank, to: optimizer.batchCount, by: world.size) {
            let file = partFile(b, in: parts)
            if b < earlierBatches {
                mine.append(BatchTime(batch: b, rank: world.rank, seconds: 0, kept: true))
            } else if FileManager.default.fileExists(atPath: file.path) {
                let kept = try SampleSet.load(from: file)
                try kept.checkContinues(
                    configuration: configuration, batchSize: optimizer.batchSize, sample: optimizer.inputShape,
                    file: file.lastPathComponent)
                mine.append(BatchTime(batch: b, rank: world.rank, seconds: kept.seconds, kept: true))
            } else {
                todo.append(b)
                continue
            }
            batchDone(mine[mine.count - 1])
        }
        try withoutActuallyEscaping(batchDone) { batchDone in
            let lanes = BatchLanes(batches: todo) { b, batch in
                try SampleSet(
                    images: batch.images, configuration: configuration, batchSize: optimizer.batchSize,
                    losses: [batch.terms], seconds: batch.timing.total, timing: batch.timing
                ).save(to: partFile(b, in: parts))
                mine.append(BatchTime(batch: b, rank: world.rank, seconds: batch.timing.total, kept: false))
                batchDone(mine[mine.count - 1])
            }
            try lanes.make(model: model, optimizer: optimizer)
        }

        // Gathering the records is also where rank 0 waits for every rank's last batch.
        let gathered = try world.gather(try JSONEncoder().encode(mine).map { $0 })
        guard world.rank == 0 else { return nil }
        let batches = try gathered.flatMap { try JSONDecoder().decode([BatchTime].self, from: Data($0)) }
            .sorted { $0.batch < $1.batch }
        var images = earlier?.images.scalars ?? [], losses = earlier?.losses ?? []
        for b in earlierBatches..<optimizer.batchCount {
            let part = try SampleSet.load(from: partFile(b, in: parts))
            images += part.images.scalars
            losses += part.losses
        }
        let samples = SampleSet(
            batches: images, sample: optimizer.inputShape, configuration: configuration,
            batchSize: optimizer.batchSize, losses: losses,
            seconds: (earlier?.seconds ?? 0) + Date().timeIntervalSince(start))
        try samples.save(to: output)
        try? FileManager.default.removeItem(at: parts)
        return (samples, batches)
    }

    static func partFile(_ batch: Int, in parts: URL) -> URL {
        parts.appendingPathComponent(String(format: "batch-%06ld.safetensors", batch))
    }

    /// The sample set already at `output`, if any: refused, as a single process refuses its checkpoint, when it
    /// was made with another configuration, batch size or image shape.
    static func finishedSet(_ output: URL, optimizer: SampleOptimizer) throws -> SampleSet? {
        guard FileManager.default.fileExists(atPath: output.path) else { return nil }
        let saved = try SampleSet.load(from: output)
        try saved.checkContinues(
            configuration: optimizer.configuration, batchSize: optimizer.batchSize, sample: optimizer.inputShape,
            file: output.lastPathComponent)
        return saved
    }
}

import Foundation

/// Trains an image classifier with SGD (Nesterov momentum, weight decay, cosine learning rate), random crops and
/// flips, shuffled batches from a seeded random-number generator, test accuracy after every epoch, and an atomic
/// checkpoint after every epoch from which a killed run resumes with nothing lost.
///
/// The run is deterministic given the seed: the random-number state at the start of each epoch is saved, so a
/// resumed run draws the same shuffles and augmentations as an uninterrupted one.
public final class ClassifierTrainer {
    /// The model trained in place: after ``run(checkpoint:epochLimit:progress:)`` it holds the trained weights.
    public let model: Model
    /// The run's settings, validated by `init`; a checkpoint resumes only under the same ones.
    public let configuration: TrainingConfiguration
    /// One report per finished epoch, in order, those restored from a checkpoint included.
    public private(set) var history: [EpochReport] = []
    /// What names the model's architecture (`Model.load`'s keys: its name, input shape, width...), written into
    /// every checkpoint too, so that a checkpoint loads as the model it holds.
    public var modelMetadata: [String: String] = [:]
    private let train: LabeledImages, test: LabeledImages
    private let executor: GraphExecutor
    private let optimizer: SGD
    private var random: SeededRandom
    /// The value of padding pixels: black, i.e. the most negative normalised value of the training images.
    private let black: Float

    /// Checkpoint metadata keys.
    private enum Key {
        // The state key keeps its first name, "generator", so older checkpoints resume.
        static let format = "format", configuration = "configuration", history = "history", random = "generator"
    }
    private static let format = "swift-dsg classifier checkpoint 1"

    /// A trainer of `model` (one image input `[C, H, W]`, logits as its first output) on `train`, measured on
    /// `test` after every epoch. Throws ``TrainingError/invalidConfiguration(_:)`` for a bad setting or a batch
    /// larger than `train`, or a ``GraphError`` from the executor.
    public init(model: Model, configuration: TrainingConfiguration, train: LabeledImages, test: LabeledImages) throws {
        try configuration.validate()
        // The batch is written straight into the executor's input buffer, so the shapes must agree exactly.
        for images in [train, test] where model.inputs.count != 1 || images.sampleShape != model.inputs[0].shape {
            throw GraphError.tensorShape(
                name: model.inputs.first?.name ?? "input", expected: model.inputs.first?.shape ?? [],
                got: images.sampleShape)
        }
        guard configuration.batchSize <= train.count else {
            throw TrainingError.invalidConfiguration(
                "the batch size must be between 1 and the \(train.count) training images")
        }
        self.model = model
        self.configuration = configuration
        self.train = train
        self.test = test
        executor = try GraphExecutor(model: model, batchSize: configuration.batchSize)
        optimizer = SGD(
            learningRate: configuration.learningRate, momentum: configuration.momentum,
            nesterov: configuration.nesterov && configuration.momentum > 0, weightDecay: configuration.weightDecay)
        random = SeededRandom(seed: configuration.seed)
        black = train.images.withUnsafeBufferPointer { $0.min() ?? 0 }
    }

    /// Full batches per epoch: `train.count / batchSize` (the remainder of each shuffle is left out).
    public var stepsPerEpoch: Int { train.count / configuration.batchSize }

    /// Continues from `checkpoint` if it exists, then trains the remaining epochs (at most `epochLimit` of
    /// them in this call, to train in slices), writing the checkpoint after each one. Returns every epoch's
    /// report, those of earlier runs included.
    public func run(
        checkpoint: URL?, epochLimit: Int? = nil, progress: (TrainingProgress) -> Void = { _ in }
    ) throws -> [EpochReport] {
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) { try resume(from: checkpoint) }
        let start = Date()
        let firstEpoch = history.count
        let lastEpoch = min(configuration.epochs, firstEpoch + (epochLimit ?? configuration.epochs))
        for epoch in firstEpoch..<lastEpoch {
            let epochStart = Date()
            let (loss, accuracy) = try trainEpoch(epoch) { step, loss in
                let done = Double((epoch - firstEpoch) * stepsPerEpoch + step)
                let elapsed = Date().timeIntervalSince(start)
                let total = Double((lastEpoch - firstEpoch) * stepsPerEpoch)
                progress(
                    TrainingProgress(
                        epoch: epoch, epochs: configuration.epochs, step: step, stepsPerEpoch: stepsPerEpoch,
                        loss: loss,
                        imagesPerSecond: done * Double(configuration.batchSize) / max(elapsed, 1e-9),
                        secondsRemaining: elapsed / max(done, 1) * (total - done)))
            }
            let testAccuracy = try Evaluation.accuracy(of: model, on: test)
            history.append(
                EpochReport(
                    epoch: epoch, trainLoss: loss, trainAccuracy: accuracy, testAccuracy: testAccuracy,
                    seconds: Date().timeIntervalSince(epochStart)))
            if let checkpoint { try save(to: checkpoint) }
        }
        return history
    }

    /// One pass over the shuffled training set; returns the mean loss and the accuracy on the training batches.
    private func trainEpoch(_ epoch: Int, _ report: (Int, Double) -> Void) throws -> (Double, Double) {
        let n = configuration.batchSize
        var order = Array(0..<train.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, random.integer(in: 0..<(i + 1))) }
        var labels = [Int32](repeating: 0, count: n)
        let output = model.outputs[0]
        let classes = model.shape(of: output).elementCount
        let totalSteps = configuration.epochs * stepsPerEpoch
        let schedule = LearningRateSchedule.cosine(total: totalSteps)
        var lossSum = 0.0, correct = 0
        for step in 0..<stepsPerEpoch {
            let batch = order[(step * n)..<((step + 1) * n)]
            fillBatch(batch, labels: &labels)
            optimizer.learningRate = schedule.rate(base: configuration.learningRate, at: epoch * stepsPerEpoch + step)
            try executor.run(training: true)
            executor.zeroGradients()
            executor.withValue(output) { logits in
                for i in 0..<n where Evaluation.predictedClass(logits, sample: i, classes: classes) == Int(labels[i]) {
                    correct += 1
                }
            }
            let loss = try Losses.softmaxCrossEntropy(executor, labels: labels)
            guard loss.isFinite else { throw TrainingError.nonFiniteLoss(epoch: epoch, step: step) }
            executor.backward()
            optimizer.step(executor)
            lossSum += Double(loss)
            if step % 10 == 9 || step == stepsPerEpoch - 1 { report(step + 1, lossSum / Double(step + 1)) }
        }
        return (lossSum / Double(stepsPerEpoch), Double(correct) / Double(stepsPerEpoch * n))
    }

    /// Writes the augmented images of `batch` into the executor's input and their labels into `labels`.
    private func fillBatch(_ batch: ArraySlice<Int>, labels: inout [Int32]) {
        let shape = train.sampleShape
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let pad = configuration.cropPadding
        executor.withInput(0) { input in
            train.images.withUnsafeBufferPointer { images in
                for (slot, index) in batch.enumerated() {
                    labels[slot] = train.labels[index]
                    let dy = pad > 0 ? random.integer(in: 0..<(2 * pad + 1)) - pad : 0
                    let dx = pad > 0 ? random.integer(in: 0..<(2 * pad + 1)) - pad : 0
                    let flip = configuration.horizontalFlip && random.integer(in: 0..<2) == 1
                    for ch in 0..<c {
                        let src = images.baseAddress! + (index * c + ch) * h * w
                        let dst = input.baseAddress! + (slot * c + ch) * h * w
                        for y in 0..<h {
                            let sy = y + dy
                            for x in 0..<w {
                                let sx = (flip ? w - 1 - x : x) + dx
                                dst[y * w + x] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? src[sy * w + sx] : black
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: - Checkpoints

    private func save(to url: URL) throws {
        let metadata = modelMetadata.merging([
            Key.format: Self.format,
            Key.configuration: try configuration.metadataJSON(),
            Key.history: try history.metadataJSON(),
            Key.random: try random.metadataJSON(),
        ]) { $1 }
        let contents = Safetensors.Contents(tensors: model.stateDict + optimizer.state(of: model), metadata: metadata)
        do { try Safetensors.write(contents, to: url) } catch { throw TrainingError.checkpoint(error) }
    }

    private func resume(from url: URL) throws {
        let file = url.lastPathComponent
        let contents: Safetensors.Contents
        do { contents = try Safetensors.read(url) } catch { throw TrainingError.checkpoint(error) }
        guard contents.metadata[Key.format] == Self.format else {
            throw TrainingError.checkpointMismatch(
                file: file, reason: "it is not a classifier training checkpoint of this package")
        }
        let decoder = JSONDecoder()
        guard
            let saved = contents.metadata[Key.configuration].flatMap({
                try? decoder.decode(TrainingConfiguration.self, from: Data($0.utf8))
            }),
            let history = contents.metadata[Key.history].flatMap({
                try? decoder.decode([EpochReport].self, from: Data($0.utf8))
            }),
            let random = contents.metadata[Key.random].flatMap({
                try? decoder.decode(SeededRandom.self, from: Data($0.utf8))
            })
        else { throw TrainingError.checkpointMismatch(file: file, reason: "its metadata is incomplete") }
        guard saved == configuration else {
            throw TrainingError.checkpointMismatch(
                file: file, reason: "it was made with different settings (\(describe(saved)))")
        }
        do {
            try model.load(contents, file: file, ignoringPrefixes: ["optimizer."])
            try optimizer.restoreState(contents, of: model, file: file)
        } catch { throw TrainingError.checkpoint(error) }
        self.history = history
        self.random = random
    }

    private func describe(_ c: TrainingConfiguration) -> String {
        "epochs \(c.epochs), batch \(c.batchSize), learning rate \(c.learningRate), seed \(c.seed)"
    }
}

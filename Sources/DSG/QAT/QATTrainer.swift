import DSGCore
import Foundation

/// Data-free quantization-aware training (Docs/DSG.md §10): a `Generator` learns, against the frozen full-precision
/// teacher, to make images whose batch statistics match the teacher's BatchNorm statistics (with DSG's slack
/// margins and correlation inhibition, or GDFQ's plain loss), and a fake-quantized copy of the teacher learns
/// from those images by distillation.
///
/// Each iteration: the generator makes a batch from Gaussian latents and random labels; the teacher's
/// cross-entropy to the labels, the batch-statistics term and (DSG) correlation inhibition update the generator
/// (Adam); then the student, fed the same images, takes an SGD step on `α T² KL(teacher ‖ student) + CE` with
/// straight-through gradients, except during warm-up. Checkpoints after every epoch hold everything a resumed
/// run needs, so a killed run continues as if it had not stopped.
///
/// Data-parallel (Docs/DSG.md §10.9): given a ``DataParallelGroup``, each process holds its share of every batch
/// (the latents and labels of the whole batch are drawn alike everywhere), the generator's BatchNorm and the
/// loss's batch statistics are the whole batch's, every gradient is summed over the group before each optimiser
/// step and activation ranges come from the whole batch, so all processes keep the same weights and follow the
/// run of one process on the whole batch, up to float rounding.
public final class QATTrainer {
    /// The full-precision model being quantized; frozen (evaluation mode) and never changed.
    public let teacher: Model
    /// The run's settings, validated by `init`; a checkpoint resumes only under the same ones (more epochs are
    /// allowed).
    public let configuration: QATConfiguration
    /// The generator trained alongside the student; its images are what the student learns from.
    public let generator: Generator
    /// One report per finished epoch, in order, those restored from a checkpoint included.
    public internal(set) var history: [QATEpoch] = []
    /// Where this trainer's iterations spent their time (not saved in checkpoints).
    public private(set) var timing = QATTiming()

    let student: QATStudent
    /// The processes sharing each batch; nil when this one holds it all.
    public let group: DataParallelGroup?
    /// This process's samples of each batch.
    private let share: Range<Int>
    private var objective: QATGeneratorLoss
    let generatorExecutor: GraphExecutor, teacherExecutor: GraphExecutor, studentExecutor: GraphExecutor
    let adam: Adam, sgd: SGD
    var random: SeededRandom
    private let classes: Int
    let fingerprint: String
    // Buffers of one iteration, made once.
    // Latents and labels are the whole batch's; the labels, images and logits of this process's share follow.
    private var latent: Tensor, labelValues: Tensor, labels: [Int32]
    private var shareLabels: [Int32], images: [Float], teacherLogits: [Float]

    /// Prepares a run on `teacher` (left unchanged): generator, student, optimisers and, for the DSG loss, the
    /// margins from batches of Gaussian inputs. With `group`, this process trains its share of every batch
    /// and every process of the group must make the same trainer and the same calls.
    public init(
        teacher: Model, configuration: QATConfiguration = QATConfiguration(), group: DataParallelGroup? = nil
    ) throws {
        try configuration.validate()
        guard !teacher.batchNormLayers.isEmpty else { throw QATError.noBatchNorm }
        guard teacher.inputs.count == 1 else {
            throw QATError.invalidConfiguration("the teacher must take one image input")
        }
        if let group, group.size > configuration.batchSize {
            throw QATError.invalidConfiguration(
                "a batch of \(configuration.batchSize) cannot be shared by \(group.size) processes")
        }
        if let group, group.size > 1, configuration.layerwiseEnhancement {
            throw QATError.invalidConfiguration("layerwise enhancement is not spread over processes yet")
        }
        self.teacher = teacher
        self.configuration = configuration
        let n = configuration.batchSize
        self.group = group
        share = group?.share(of: n) ?? 0..<n
        let m = share.count
        let imageShape = teacher.inputs[0].shape
        classes = teacher.shape(of: teacher.outputs[0]).elementCount
        generator = try Generator(
            imageShape: imageShape, classes: classes, latentDimension: configuration.latentDimension,
            conditioning: configuration.conditioning,
            seed: configuration.seed)
        student = try QATStudent(
            teacher: teacher, weightBits: configuration.weightBits, activationBits: configuration.activationBits,
            activationRange: configuration.activationRange, group: group, batch: n)
        generatorExecutor = try GraphExecutor(model: generator.model, batchSize: m)
        if let group { generatorExecutor.shareBatch(of: n, over: group) }
        teacherExecutor = try GraphExecutor(model: teacher, batchSize: m)
        teacherExecutor.inputsRequireGradient = [true]
        studentExecutor = try GraphExecutor(model: student.model, batchSize: m)
        adam = Adam(learningRate: configuration.generatorLearningRate, beta1: 0.5, beta2: 0.999)
        sgd = SGD(learningRate: configuration.studentLearningRate, momentum: 0.9, nesterov: true, weightDecay: 1e-4)
        random = SeededRandom(seed: configuration.seed &+ 1)
        fingerprint = teacher.fingerprint
        objective = try QATGeneratorLoss(
            teacher: teacher, executor: teacherExecutor, configuration: configuration, random: &random, group: group)
        latent = Tensor(shape: [n, configuration.latentDimension], repeating: 0)
        labelValues = Tensor(shape: [n], repeating: 0)
        labels = Array(repeating: 0, count: n)
        shareLabels = Array(repeating: 0, count: m)
        images = Array(repeating: 0, count: m * imageShape.elementCount)
        teacherLogits = Array(repeating: 0, count: m * classes)
    }

    /// Trains until `configuration.epochs` epochs are done (or `epochLimit` more in this call), continuing from
    /// `checkpoint` when that file exists and this trainer has not trained yet, and writing it after every
    /// epoch. With `test` images, the quantized student's top-1 is measured after every epoch.
    @discardableResult
    public func train(
        test: LabeledImages? = nil, checkpoint: URL? = nil, epochLimit: Int? = nil,
        progress: (QATProgress) throws -> Void = { _ in }
    ) throws -> [QATEpoch] {
        if history.isEmpty, let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            try resume(from: checkpoint)
        }
        let last = min(configuration.epochs, history.count + (epochLimit ?? configuration.epochs))
        for epoch in history.count..<last {
            let start = Date()
            let decay = configuration.decay(epoch: epoch)
            adam.learningRate = configuration.generatorLearningRate * decay
            sgd.learningRate = configuration.studentLearningRate * decay
            let updates = epoch >= configuration.warmupEpochs
            var generatorTotal = 0.0, studentTotal = 0.0
            for iteration in 0..<configuration.iterationsPerEpoch {
                /// The step's loss; a NaN or infinity in it, or inside its network, stops the run naming the step.
                func finite(_ loss: String, _ step: () throws -> Double) throws -> Double {
                    let value: Double
                    do { value = try step() } catch GraphError.nonFinite { value = .nan }
                    guard value.isFinite else {
                        throw QATError.nonFinite(epoch: epoch, iteration: iteration, loss: loss)
                    }
                    return value
                }
                let g = try finite("generator") { try generatorStep() }
                var mark = ContinuousClock.now
                let s = try finite("student") {
                    try studentStep(update: updates, trackRanges: epoch < configuration.calibrationEpochs)
                }
                lap(\.student, &mark)
                timing.iterations += 1
                generatorTotal += g
                studentTotal += s
                try progress(
                    QATProgress(
                        epoch: epoch, epochs: configuration.epochs, iteration: iteration + 1,
                        iterations: configuration.iterationsPerEpoch,
                        generatorLoss: generatorTotal / Double(iteration + 1),
                        studentLoss: studentTotal / Double(iteration + 1), studentUpdates: updates))
            }
            let accuracy = try test.map { try Evaluation.accuracy(of: quantizedStudent().model, on: $0) }
            let k = Double(configuration.iterationsPerEpoch)
            history.append(
                QATEpoch(
                    generatorLoss: generatorTotal / k, studentLoss: studentTotal / k, testAccuracy: accuracy,
                    seconds: Date().timeIntervalSince(start)))
            // Every process holds the same state; one writes it.
            if let checkpoint, (group?.rank ?? 0) == 0 { try save(to: checkpoint) }
        }
        return history
    }

    /// The student with its weights quantized: a model that evaluates, saves and loads like a PTQ result.
    public func quantizedStudent() throws -> QuantizedModel {
        student.exported(activationBits: configuration.activationBits)
    }

    /// `count` images from the generator (training-mode batch statistics, as it always runs), one label per
    /// class in turn, for pictures.
    public func generatedImages(count: Int, seed: UInt64) throws -> Tensor {
        var g = SeededRandom(seed: seed)
        let executor = try GraphExecutor(model: generator.model, batchSize: count, backward: false)
        // Running statistics are left as they were: a picture must not change the generator.
        let saved = generator.model.stateDict
        try executor.forward(
            [
                g.normalTensor([count, configuration.latentDimension]),
                Tensor(shape: [count], scalars: (0..<count).map { Float($0 % classes) }),
            ], training: true)
        for (name, tensor) in saved { try generator.model.setTensor(named: name, to: tensor) }
        return executor.output()
    }

    // MARK: - One iteration

    /// Adds the time since `mark` to `phase` and moves `mark` to now.
    private func lap(_ phase: WritableKeyPath<QATTiming, Double>, _ mark: inout ContinuousClock.Instant) {
        let now = ContinuousClock.now
        timing[keyPath: phase] += (now - mark).inSeconds
        mark = now
    }

    /// Updates the generator; returns its loss. Leaves the batch in `images` and the teacher's logits in
    /// `teacherLogits`.
    private func generatorStep() throws -> Double {
        let n = configuration.batchSize
        var mark = ContinuousClock.now
        latent.withUnsafeMutableBufferPointer { z in for i in z.indices { z[i] = random.normal() } }
        labelValues.withUnsafeMutableBufferPointer { y in
            for i in 0..<n {
                labels[i] = Int32(random.integer(in: 0..<classes))
                y[i] = Float(labels[i])
            }
        }
        for i in 0..<share.count { shareLabels[i] = labels[share.lowerBound + i] }
        try generatorExecutor.setInput(0, from: latent, samples: share)
        try generatorExecutor.setInput(1, from: labelValues, samples: share)
        try generatorExecutor.run(training: true)
        lap(\.generatorForward, &mark)
        let output = generator.model.outputs[0]
        generatorExecutor.withValue(output) { x in
            images.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: x.baseAddress!, count: x.count) }
        }

        teacherExecutor.withInput(0) { input in
            images.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        }
        try teacherExecutor.run(training: false)
        teacherExecutor.withValue(teacher.outputs[0]) { l in
            teacherLogits.withUnsafeMutableBufferPointer {
                $0.baseAddress!.update(from: l.baseAddress!, count: l.count)
            }
        }
        let loss = try objective.evaluate(
            teacherExecutor, images: images, labels: shareLabels, random: &random)
        let imageGradient = teacherExecutor.gradient(of: ValueID(index: 0))
        lap(\.teacher, &mark)
        generatorExecutor.zeroGradients()
        let seed = generatorExecutor.gradient(of: output)
        seed.baseAddress!.update(from: imageGradient.baseAddress!, count: seed.count)
        generatorExecutor.backward()
        if let group { generatorExecutor.sumParameterGradients(over: group) }
        adam.step(generatorExecutor)
        lap(\.generatorBackward, &mark)
        return loss
    }

    /// Distils the teacher into the student on the generator's batch; returns the student's loss.
    private func studentStep(update: Bool, trackRanges: Bool) throws -> Double {
        let n = share.count
        // This share's part of the batch means (1 without a group).
        let part = Float(n) / Float(configuration.batchSize)
        try student.initializeRanges(from: teacherExecutor)
        student.quantizeWeights()
        studentExecutor.withInput(0) { input in
            images.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        }
        try studentExecutor.run(training: false)
        if trackRanges { student.trackRanges(studentExecutor) }
        studentExecutor.zeroGradients()
        let logits = student.model.outputs[0]
        let gradient = studentExecutor.gradient(of: logits).baseAddress!
        let t = configuration.temperature
        let distillation = studentExecutor.withValue(logits) { s in
            Double(
                Losses.klDivergence(
                    student: s.baseAddress!, teacher: teacherLogits, batch: n, classes: classes, temperature: t,
                    reduction: .elementMean, gradient: gradient, scale: configuration.distillationWeight * t * t * part)
            )
        }
        var loss =
            distillation + Double(try Losses.softmaxCrossEntropy(studentExecutor, labels: shareLabels, scale: part))
        if update { studentExecutor.backward() }
        student.restoreWeights()
        if let group {
            withUnsafeMutablePointer(to: &loss) { group.sum(UnsafeMutableBufferPointer(start: $0, count: 1)) }
            if update { studentExecutor.sumParameterGradients(over: group) }
        }
        if update { sgd.step(studentExecutor) }
        return loss
    }
}

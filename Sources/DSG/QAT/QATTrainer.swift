import DSGCore
import Foundation

/// One finished epoch of quantization-aware training.
public struct QATEpoch: Sendable, Codable, Equatable {
    /// Mean losses over the epoch's iterations.
    public var generatorLoss: Double, studentLoss: Double
    /// The quantized student's top-1 on the test images given to `train`, if any.
    public var testAccuracy: Double?
    public var seconds: Double
}

/// Where the time of QAT iterations went, in seconds summed over the iterations run by this trainer.
public struct QATTiming: Sendable, Equatable {
    /// The generator's forward pass.
    public var generatorForward = 0.0
    /// The teacher's forward pass, the generator's loss terms and the backward pass to the images.
    public var teacher = 0.0
    /// The generator's backward pass and its Adam step.
    public var generatorBackward = 0.0
    /// The student's weight quantization, forward, distillation loss, backward and SGD step.
    public var student = 0.0
    public var iterations = 0

    public var total: Double { generatorForward + teacher + generatorBackward + student }
}

/// Where a run is, for progress lines.
public struct QATProgress: Sendable {
    public var epoch: Int, epochs: Int, iteration: Int, iterations: Int
    public var generatorLoss: Double, studentLoss: Double
    /// Whether the student is being updated yet (false during warm-up).
    public var studentUpdates: Bool
}

/// Data-free quantization-aware training (DSG-SPEC §7): a `Generator` learns, against the frozen full-precision
/// teacher, to make images whose batch statistics match the teacher's BatchNorm statistics (with DSG's slack
/// margins and correlation inhibition, or GDFQ's plain loss), and a fake-quantized copy of the teacher learns
/// from those images by distillation.
///
/// Each iteration: the generator makes a batch from Gaussian latents and random labels; the teacher's
/// cross-entropy to the labels, the batch-statistics term and (DSG) correlation inhibition update the generator
/// (Adam); then the student, fed the same images, takes an SGD step on `α T² KL(teacher ‖ student) + CE` with
/// straight-through gradients, except during warm-up. Checkpoints after every epoch hold everything a resumed
/// run needs, so a killed run continues as if it had not stopped.
public final class QATTrainer {
    public let teacher: Model
    public let configuration: QATConfiguration
    public let generator: Generator
    public private(set) var history: [QATEpoch] = []
    public private(set) var timing = QATTiming()

    let student: QATStudent
    private let layers: [BatchNormLayer]
    private var alignments: [BatchStatisticsAlignment]
    private let correlation: CorrelationInhibition?
    /// The per-sample term with layerwise enhancement (DSG with `layerwiseEnhancement` only).
    private var enhancement: DSGLoss?
    private let generatorExecutor: GraphExecutor, teacherExecutor: GraphExecutor, studentExecutor: GraphExecutor
    private let adam: Adam, sgd: SGD
    private var random: SeededGenerator
    private let classes: Int
    private let fingerprint: String
    // Buffers of one iteration, made once.
    private var latent: Tensor, labelValues: Tensor, labels: [Int32], images: [Float], teacherLogits: [Float]

    /// Prepares a run on `teacher` (left unchanged): generator, student, optimisers and, for the DSG loss, the
    /// margins from batches of Gaussian inputs.
    public init(teacher: Model, configuration: QATConfiguration = QATConfiguration()) throws {
        try configuration.validate()
        layers = teacher.batchNormLayers
        guard !layers.isEmpty else { throw QATError.noBatchNorm }
        guard teacher.inputs.count == 1 else { throw QATError.invalidConfiguration("the teacher must take one image input") }
        self.teacher = teacher
        self.configuration = configuration
        let n = configuration.batchSize
        let imageShape = teacher.inputs[0].shape
        classes = teacher.shape(of: teacher.outputs[0]).elementCount
        generator = try Generator(
            imageShape: imageShape, classes: classes, latentDimension: configuration.latentDimension, conditioning: configuration.conditioning,
            seed: configuration.seed)
        student = try QATStudent(
            teacher: teacher, weightBits: configuration.weightBits, activationBits: configuration.activationBits,
            rangeEstimate: configuration.activationRange)
        generatorExecutor = try GraphExecutor(model: generator.model, batchSize: n)
        teacherExecutor = try GraphExecutor(model: teacher, batchSize: n)
        teacherExecutor.inputsRequireGradient = [true]
        studentExecutor = try GraphExecutor(model: student.model, batchSize: n)
        adam = Adam(learningRate: configuration.generatorLearningRate, beta1: 0.5, beta2: 0.999)
        sgd = SGD(learningRate: configuration.studentLearningRate, momentum: 0.9, nesterov: true, weightDecay: 1e-4)
        random = SeededGenerator(seed: configuration.seed &+ 1)
        fingerprint = Self.fingerprint(teacher)

        var margins = layers.map { _ in (mean: Float(0), variance: Float(0)) }
        if configuration.generatorLoss == .dsg {
            margins = try Self.margins(teacher: teacher, executor: teacherExecutor, quantile: configuration.marginQuantile, random: &random)
        }
        alignments = zip(layers, margins).map { layer, margin in
            let (mean, variance) = teacher.runningStatistics(of: layer)
            return BatchStatisticsAlignment(
                form: configuration.generatorLoss == .dsg ? .slack : .gdfq, targetMean: mean.scalars, targetVariance: variance.scalars,
                meanMargin: [margin.mean], varianceMargin: [margin.variance])
        }
        correlation = configuration.generatorLoss == .dsg ? CorrelationInhibition(batch: n, dimension: imageShape.elementCount) : nil
        if configuration.generatorLoss == .dsg && configuration.layerwiseEnhancement {
            // Only the per-sample BatchNorm term, with the paper's enhancement and per-sample margins (§2.3).
            var options = GenerationOptions(preset: .dsg)
            options.weights.batchNorm = 0.1 / Float(layers.count)
            (options.weights.inputStatistics, options.weights.crossEntropy, options.weights.correlation) = (0, 0, 0)
            (options.weights.totalVariation, options.weights.l2) = (0, 0)
            options.correlation = .off
            // Their own Gaussian batch, so turning the term on leaves the run's latents and labels as they were.
            var noise = SeededGenerator(seed: configuration.seed &+ 2)
            let perSample = try SlackMargins.measure(
                model: teacher, images: noise.normalTensor(imageShape.batched(n)), quantile: configuration.marginQuantile, granularity: .perLayer)
            enhancement = try DSGLoss(model: teacher, batchSize: n, options: options, margins: perSample)
        }
        latent = Tensor(shape: [n, configuration.latentDimension], repeating: 0)
        labelValues = Tensor(shape: [n], repeating: 0)
        labels = Array(repeating: 0, count: n)
        images = Array(repeating: 0, count: n * imageShape.elementCount)
        teacherLogits = Array(repeating: 0, count: n * classes)
    }

    /// Trains until `configuration.epochs` epochs are done (or `epochLimit` more in this call), continuing from
    /// `checkpoint` when that file exists and this trainer has not trained yet, and writing it after every
    /// epoch. With `test` images, the quantized student's top-1 is measured after every epoch.
    @discardableResult
    public func train(
        test: LabeledImages? = nil, checkpoint: URL? = nil, epochLimit: Int? = nil, progress: (QATProgress) throws -> Void = { _ in }
    ) throws -> [QATEpoch] {
        if history.isEmpty, let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) { try resume(from: checkpoint) }
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
                    guard value.isFinite else { throw QATError.nonFinite(epoch: epoch, iteration: iteration, loss: loss) }
                    return value
                }
                let g = try finite("generator") { try generatorStep() }
                var mark = ContinuousClock.now
                let s = try finite("student") { try studentStep(update: updates, trackRanges: epoch < configuration.calibrationEpochs) }
                lap(\.student, &mark)
                timing.iterations += 1
                generatorTotal += g
                studentTotal += s
                try progress(QATProgress(
                    epoch: epoch, epochs: configuration.epochs, iteration: iteration + 1, iterations: configuration.iterationsPerEpoch,
                    generatorLoss: generatorTotal / Double(iteration + 1), studentLoss: studentTotal / Double(iteration + 1), studentUpdates: updates))
            }
            let accuracy = try test.map { try Evaluation.accuracy(of: quantizedStudent().model, on: $0) }
            let k = Double(configuration.iterationsPerEpoch)
            history.append(QATEpoch(
                generatorLoss: generatorTotal / k, studentLoss: studentTotal / k, testAccuracy: accuracy, seconds: Date().timeIntervalSince(start)))
            if let checkpoint { try save(to: checkpoint) }
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
        var g = SeededGenerator(seed: seed)
        let executor = try GraphExecutor(model: generator.model, batchSize: count, backward: false)
        // Running statistics are left as they were: a picture must not change the generator.
        let saved = generator.model.stateDict
        try executor.forward([
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
        let d = (now - mark).components
        timing[keyPath: phase] += Double(d.seconds) + Double(d.attoseconds) * 1e-18
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
        generatorExecutor.withInput(0) { input in latent.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) } }
        generatorExecutor.withInput(1) { input in labelValues.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) } }
        try generatorExecutor.run(training: true)
        lap(\.generatorForward, &mark)
        let output = generator.model.outputs[0]
        generatorExecutor.withValue(output) { x in images.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: x.baseAddress!, count: x.count) } }

        teacherExecutor.withInput(0) { input in images.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) } }
        try teacherExecutor.run(training: false)
        teacherExecutor.zeroGradients()
        let logits = teacher.outputs[0]
        teacherExecutor.withValue(logits) { l in teacherLogits.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: l.baseAddress!, count: l.count) } }
        var loss = Double(try Losses.softmaxCrossEntropy(
            logits: teacherLogits, labels: labels, batch: n, classes: classes, gradient: teacherExecutor.gradient(of: logits).baseAddress!))
        let weight = 0.1 / Float(layers.count)
        for l in layers.indices {
            let target = teacherExecutor.gradient(of: layers[l].input)
            let plane = target.count / (n * layers[l].channels)
            loss += Double(weight) * teacherExecutor.withValue(layers[l].input) {
                alignments[l].evaluate($0, batch: n, plane: plane, gradient: target, scale: weight)
            }
        }
        if enhancement != nil {
            var terms = LossTerms()
            try enhancement!.networkTerms(teacherExecutor, labels: labels, into: &terms)
            loss += terms.batchNorm
        }
        teacherExecutor.backward(parameterGradients: false)
        let imageGradient = teacherExecutor.gradient(of: ValueID(index: 0))
        if let correlation {
            let scale = 1 / Double(layers.count)
            loss += scale * (try images.withUnsafeBufferPointer {
                try correlation.evaluate($0, reference: .gaussian, generator: &random, gradient: imageGradient, scale: scale)
            })
        }
        lap(\.teacher, &mark)
        generatorExecutor.zeroGradients()
        let seed = generatorExecutor.gradient(of: output)
        seed.baseAddress!.update(from: imageGradient.baseAddress!, count: seed.count)
        generatorExecutor.backward()
        adam.step(generatorExecutor)
        lap(\.generatorBackward, &mark)
        return loss
    }

    /// Distils the teacher into the student on the generator's batch; returns the student's loss.
    private func studentStep(update: Bool, trackRanges: Bool) throws -> Double {
        let n = configuration.batchSize
        try student.initializeRanges(from: teacherExecutor)
        student.quantizeWeights()
        studentExecutor.withInput(0) { input in images.withUnsafeBufferPointer { input.baseAddress!.update(from: $0.baseAddress!, count: $0.count) } }
        try studentExecutor.run(training: false)
        if trackRanges { student.trackRanges(studentExecutor) }
        studentExecutor.zeroGradients()
        let logits = student.model.outputs[0]
        let gradient = studentExecutor.gradient(of: logits).baseAddress!
        let t = configuration.temperature
        let loss = try studentExecutor.withValue(logits) { s in
            Double(Losses.klDivergence(
                student: s.baseAddress!, teacher: teacherLogits, batch: n, classes: classes, temperature: t, reduction: .elementMean,
                gradient: gradient, scale: configuration.distillationWeight * t * t))
                + Double(try Losses.softmaxCrossEntropy(logits: s.baseAddress!, labels: labels, batch: n, classes: classes, gradient: gradient))
        }
        if update { studentExecutor.backward() }
        student.restoreWeights()
        if update { sgd.step(studentExecutor) }
        return loss
    }

    // MARK: - Margins

    /// DSG-SPEC §2.3, QAT variant: per layer, the `quantile` of |batch mean − running mean| and of |batch
    /// variance − running variance| over all channels of four batches of N(0, 1) images.
    static func margins(
        teacher: Model, executor: GraphExecutor, quantile: Double, random: inout SeededGenerator
    ) throws -> [(mean: Float, variance: Float)] {
        let layers = teacher.batchNormLayers, n = executor.batchSize
        var meanGaps = layers.map { _ in [Double]() }, varianceGaps = meanGaps
        for _ in 0..<4 {
            try executor.forward([random.normalTensor(teacher.inputs[0].shape.batched(n))], training: false)
            for (l, layer) in layers.enumerated() {
                let (mean, variance) = teacher.runningStatistics(of: layer)
                executor.withValue(layer.input) { a in
                    let c = layer.channels, plane = a.count / (n * c)
                    for ch in 0..<c {
                        var values: [Double] = []
                        values.reserveCapacity(n * plane)
                        for s in 0..<n { for k in 0..<plane { values.append(Double(a[(s * c + ch) * plane + k])) } }
                        let m = values.reduce(0, +) / Double(values.count)
                        let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)
                        meanGaps[l].append(abs(m - Double(mean.scalars[ch])))
                        varianceGaps[l].append(abs(v - Double(variance.scalars[ch])))
                    }
                }
            }
        }
        return layers.indices.map {
            (Float(SlackMargins.quantile(meanGaps[$0], quantile)), Float(SlackMargins.quantile(varianceGaps[$0], quantile)))
        }
    }

    // MARK: - Checkpoints

    /// A cheap identity of the teacher's weights, so a checkpoint of another model is refused.
    static func fingerprint(_ model: Model) -> String {
        var sum = 0.0, weighted = 0.0, count = 0
        for t in model.tensors {
            t.tensor.withUnsafeBufferPointer { p in
                for (i, x) in p.enumerated() { sum += Double(x); weighted += Double(x) * Double(i % 97 + 1) }
            }
            count += t.tensor.elementCount
        }
        return "\(count) values, sum \(sum), weighted \(weighted)"
    }

    private struct Metadata: Codable {
        var configuration: QATConfiguration
        var history: [QATEpoch]
        var random: SeededGenerator
        var teacher: String
        var rangesInitialized: Bool
    }

    func save(to url: URL) throws {
        var tensors = generator.model.stateDict.map { ("generator." + $0.name, $0.tensor) }
        tensors += adam.state(of: generator.model, prefix: "generator.adam.")
        tensors += student.model.stateDict.map { ("student." + $0.name, $0.tensor) }
        tensors += sgd.state(of: student.model, prefix: "student.sgd.")
        let metadata = Metadata(configuration: configuration, history: history, random: random, teacher: fingerprint, rangesInitialized: student.ranges != nil)
        let json = String(decoding: try JSONEncoder().encode(metadata), as: UTF8.self)
        try Safetensors.write(Safetensors.Contents(tensors: tensors, metadata: ["qat": json]), to: url)
    }

    private func resume(from url: URL) throws {
        let file = url.lastPathComponent
        let contents = try Safetensors.read(url)
        guard let json = contents.metadata["qat"], let saved = try? JSONDecoder().decode(Metadata.self, from: Data(json.utf8)) else {
            throw QATError.checkpointMismatch(file: file, reason: "not a QAT checkpoint")
        }
        guard saved.teacher == fingerprint else { throw QATError.checkpointMismatch(file: file, reason: "a different teacher model") }
        var other = saved.configuration
        other.epochs = configuration.epochs  // more epochs may be asked for later
        if other != configuration {
            let a = saved.configuration, b = configuration
            let reason = a.label != b.label ? "\(a.label), not \(b.label)"
                : a.batchSize != b.batchSize ? "batch size \(a.batchSize), not \(b.batchSize)"
                : a.generatorLoss != b.generatorLoss ? "the \(a.generatorLoss.rawValue) loss, not \(b.generatorLoss.rawValue)"
                : a.activationRange != b.activationRange ? "activation ranges from \(a.activationRange.rawValue), not \(b.activationRange.rawValue)"
                : "other settings"
            throw QATError.checkpointMismatch(file: file, reason: reason)
        }
        func part(_ prefix: String) -> Safetensors.Contents {
            Safetensors.Contents(tensors: contents.tensors.compactMap { $0.name.hasPrefix(prefix) ? (String($0.name.dropFirst(prefix.count)), $0.tensor) : nil })
        }
        try generator.model.load(part("generator."), file: file, ignoringPrefixes: ["adam."])
        try adam.restoreState(contents, of: generator.model, prefix: "generator.adam.", file: file)
        try student.model.load(part("student."), file: file, ignoringPrefixes: ["sgd."])
        try sgd.restoreState(contents, of: student.model, prefix: "student.sgd.", file: file)
        if saved.rangesInitialized { student.adoptSavedRanges() }
        history = saved.history
        random = saved.random
    }
}

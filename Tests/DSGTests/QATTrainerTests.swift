import DSG
import DSGTestSupport
import Foundation
import Testing

@Suite("QATTrainer")
struct QATTrainerTests {
    static func configuration(_ loss: QATConfiguration.GeneratorLoss = .dsg) -> QATConfiguration {
        var c = QATConfiguration(weightBits: 4, activationBits: 4, generatorLoss: loss)
        c.epochs = 3
        c.iterationsPerEpoch = 3
        c.batchSize = 6
        c.warmupEpochs = 1
        c.calibrationEpochs = 2
        c.latentDimension = 8
        c.studentLearningRate = 0.01
        c.milestones = [2]
        return c
    }

    @Test(arguments: [
        (QATConfiguration.GeneratorLoss.dsg, Generator.Conditioning.embedding), (.gdfq, .embedding), (.dsg, .batchNorm),
    ])
    func trainsAndExportsAQuantizedStudent(loss: QATConfiguration.GeneratorLoss, conditioning: Generator.Conditioning)
        throws
    {
        let teacher = try TestModels.batchNormNetwork()
        let before = teacher.stateDict.map { $0.tensor.scalars }
        var configuration = Self.configuration(loss)
        configuration.conditioning = conditioning
        let trainer = try QATTrainer(teacher: teacher, configuration: configuration)
        var reports = 0
        let history = try trainer.train { p in
            reports += 1
            #expect(p.studentUpdates == (p.epoch >= 1))
        }
        #expect(reports == 9 && history.count == 3)
        #expect(history.allSatisfy { $0.generatorLoss.isFinite && $0.studentLoss.isFinite && $0.studentLoss > 0 })
        #expect(teacher.stateDict.map { $0.tensor.scalars } == before, "the teacher is frozen")
        let student = try trainer.quantizedStudent()
        #expect(student.configuration.label == "W4A4")
        // Exported weights sit on at most 16 levels per output channel.
        let weight = try student.model.tensor(named: "conv2.weight")
        let size = weight.elementCount / weight.shape[0]
        #expect(Set(weight.scalars.prefix(size)).count <= 16)
        // ... those of the quantizers the student keeps for every quantized layer.
        let record = try #require(student.weights.first { $0.layer == "conv2" })
        #expect(student.weights.count == PTQCalibrator.quantizedNodes(of: teacher).weights.count)
        #expect(record.bits == 4 && record.quantizers.count == weight.shape[0])
        #expect(weight.scalars.prefix(size).allSatisfy { record.quantizers[0]($0) == $0 })
        // The student exports in QDQ form like a PTQ model: every weight INT8, every activation a Q/DQ pair.
        let description = try student.onnxQuantization
        #expect(Set(description.weights.keys) == Set(student.weights.map(\.layer)))
        #expect(Set(description.activations.keys) == Set(student.activations.map(\.node)))
        #expect(description.weights.values.allSatisfy { $0.zeroPoints != nil })
        #expect(try ONNXExport.data(of: student.model, quantization: description).count > 0)
        // Activation ranges were calibrated (not the initial zeros).
        let range = try student.model.tensor(named: "relu1.quant.range").scalars
        #expect(range[1] > range[0])
        let images = try trainer.generatedImages(count: 5, seed: 1)
        #expect(images.shape == [5, 1, 8, 8] && images.scalars.allSatisfy { $0.isFinite })
    }

    @Test func layerwiseEnhancementAddsThePerSampleTerm() throws {
        let teacher = try TestModels.batchNormNetwork()
        var c = Self.configuration()
        c.layerwiseEnhancement = true
        var first: Double?
        let history = try QATTrainer(teacher: teacher, configuration: c).train { p in first = first ?? p.generatorLoss }
        var plainFirst: Double?
        try QATTrainer(teacher: teacher, configuration: Self.configuration()).train { p in
            plainFirst = plainFirst ?? p.generatorLoss
        }
        #expect(history.allSatisfy { $0.generatorLoss.isFinite && $0.studentLoss.isFinite })
        // The same first batch (the term draws its margins from its own noise): the loss is larger by the term.
        #expect(first! > plainFirst! + 1e-6, "\(first!) vs \(plainFirst!)")
    }

    @Test func meanSampleExtremesGiveNarrowerActivationRanges() throws {
        let teacher = try TestModels.batchNormNetwork()
        func ranges(_ estimate: QATConfiguration.ActivationRange) throws -> [[Float]] {
            var c = Self.configuration()
            (c.epochs, c.warmupEpochs, c.calibrationEpochs, c.activationRange) = (1, 1, 1, estimate)
            let trainer = try QATTrainer(teacher: teacher, configuration: c)
            try trainer.train()
            let student = try trainer.quantizedStudent().model
            return student.stateDict.filter { $0.name.hasSuffix(".quant.range") }.map { $0.tensor.scalars }
        }
        // No student updates: both runs see the same generator batches, only the estimate differs.
        let batch = try ranges(.batchExtremes), samples = try ranges(.meanSampleExtremes)
        #expect(batch.count == samples.count && !batch.isEmpty)
        for (b, s) in zip(batch, samples) {
            #expect(s[0] >= b[0] && s[1] <= b[1] && s[1] > s[0], "\(s) within \(b)")
        }
        #expect(
            zip(batch, samples).contains { $1[1] < $0[1] - 1e-4 }, "some sample reaches beyond the mean of the extremes"
        )
    }

    @Test func configurationsDecodeWholeAndOlderOnesTakeDefaults() throws {
        var c = QATConfiguration(weightBits: 5, activationBits: 6, generatorLoss: .gdfq)
        (c.epochs, c.iterationsPerEpoch, c.batchSize, c.warmupEpochs, c.calibrationEpochs) = (7, 9, 11, 2, 3)
        (c.activationRange, c.generatorLearningRate, c.studentLearningRate, c.milestones) = (
            .meanSampleExtremes, 0.5, 0.25, [3, 5]
        )
        (c.temperature, c.distillationWeight, c.marginQuantile, c.layerwiseEnhancement) = (4, 2, 0.75, true)
        (c.latentDimension, c.conditioning, c.seed) = (12, .batchNorm, 99)
        let encoded = try JSONEncoder().encode(c)
        #expect(try JSONDecoder().decode(QATConfiguration.self, from: encoded) == c, "every setting survives")
        // A checkpoint written before `activationRange` existed.
        var object = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        object["activationRange"] = nil
        let older = try JSONDecoder().decode(
            QATConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(older.activationRange == .batchExtremes && older.seed == 99)
    }

    @Test func aResumedRunEqualsAnUninterruptedOne() throws {
        let folder = try TemporaryFolder("qat")
        let teacher = try TestModels.batchNormNetwork()
        let whole = try QATTrainer(teacher: teacher, configuration: Self.configuration())
        try whole.train()
        let file = folder.file("qat.safetensors")
        try QATTrainer(teacher: teacher, configuration: Self.configuration()).train(checkpoint: file, epochLimit: 2)
        let resumed = try QATTrainer(teacher: teacher, configuration: Self.configuration())
        try resumed.train(checkpoint: file)
        #expect(resumed.history.map(\.studentLoss) == whole.history.map(\.studentLoss))
        #expect(resumed.history.map(\.generatorLoss) == whole.history.map(\.generatorLoss))
        let a = try whole.quantizedStudent().model.stateDict, b = try resumed.quantizedStudent().model.stateDict
        #expect(a.map(\.name) == b.map(\.name) && a.map { $0.tensor.scalars } == b.map { $0.tensor.scalars })
        #expect(
            whole.generator.model.stateDict.map { $0.tensor.scalars }
                == resumed.generator.model.stateDict.map { $0.tensor.scalars })
    }

    @Test func checkpointsOfAnotherRunAndBadTeachersAreRefused() throws {
        let folder = try TemporaryFolder("qat")
        let teacher = try TestModels.batchNormNetwork()
        let file = folder.file("qat.safetensors")
        try QATTrainer(teacher: teacher, configuration: Self.configuration()).train(checkpoint: file, epochLimit: 1)
        var bits = Self.configuration()
        bits.weightBits = 6
        #expect(throws: QATError.checkpointMismatch(file: "qat.safetensors", reason: "W4A4, not W6A4")) {
            try QATTrainer(teacher: teacher, configuration: bits).train(checkpoint: file)
        }
        var batch = Self.configuration()
        batch.batchSize = 4
        #expect(throws: QATError.checkpointMismatch(file: "qat.safetensors", reason: "batch size 6, not 4")) {
            try QATTrainer(teacher: teacher, configuration: batch).train(checkpoint: file)
        }
        #expect(throws: QATError.checkpointMismatch(file: "qat.safetensors", reason: "the dsg loss, not gdfq")) {
            try QATTrainer(teacher: teacher, configuration: Self.configuration(.gdfq)).train(checkpoint: file)
        }
        var ranges = Self.configuration()
        ranges.activationRange = .meanSampleExtremes
        #expect(
            throws: QATError.checkpointMismatch(
                file: "qat.safetensors", reason: "activation ranges from batchExtremes, not meanSampleExtremes")
        ) {
            try QATTrainer(teacher: teacher, configuration: ranges).train(checkpoint: file)
        }
        var seed = Self.configuration()
        seed.seed = 7
        #expect(throws: QATError.checkpointMismatch(file: "qat.safetensors", reason: "other settings")) {
            try QATTrainer(teacher: teacher, configuration: seed).train(checkpoint: file)
        }
        // A safetensors file that is not a checkpoint (the teacher's own weights) is named as such.
        let weights = folder.file("weights.safetensors")
        try Safetensors.write(Safetensors.Contents(tensors: teacher.stateDict), to: weights)
        #expect(throws: QATError.checkpointMismatch(file: "weights.safetensors", reason: "not a QAT checkpoint")) {
            try QATTrainer(teacher: teacher, configuration: Self.configuration()).train(checkpoint: weights)
        }
        let other = try TestModels.batchNormNetwork()
        try other.setTensor(named: "fc.bias", to: Tensor(shape: [3], scalars: [1, 2, 3]))
        #expect(throws: QATError.checkpointMismatch(file: "qat.safetensors", reason: "a different teacher model")) {
            try QATTrainer(teacher: other, configuration: Self.configuration()).train(checkpoint: file)
        }

        var b = ModelBuilder(seed: 1)
        let x = b.input("image", [1, 8, 8])
        let plain = b.finish(outputs: [
            try b.linear(
                try b.flatten(try b.relu(try b.conv2d(x, "conv", outChannels: 2, kernel: 3), "relu"), "flatten"), "fc",
                outFeatures: 3)
        ])
        #expect(throws: QATError.noBatchNorm) { try QATTrainer(teacher: plain) }
        var nine = Self.configuration()
        nine.activationBits = 9
        #expect(throws: QATError.invalidConfiguration("activation bit-width 9 is outside 2...8")) {
            try QATTrainer(teacher: teacher, configuration: nine)
        }
    }

    @Test func aLossThatTurnsNaNStopsWithTheIterationAndTheLoss() throws {
        let teacher = try TestModels.batchNormNetwork()
        var c = Self.configuration()
        c.studentLearningRate = 1e30
        c.warmupEpochs = 0
        let trainer = try QATTrainer(teacher: teacher, configuration: c)
        // Steps of 1e30 make the weights enormous; the third iteration's forward pass overflows.
        #expect(throws: QATError.nonFinite(epoch: 0, iteration: 2, loss: "student")) { try trainer.train() }
    }

    @Test func aGeneratorThatDivergesIsNamed() throws {
        let teacher = try TestModels.batchNormNetwork()
        var c = Self.configuration()
        c.generatorLearningRate = 1e30
        let trainer = try QATTrainer(teacher: teacher, configuration: c)
        // Adam moves every generator weight by about 1e30 in the first step; the next forward pass overflows.
        #expect(throws: QATError.nonFinite(epoch: 0, iteration: 1, loss: "generator")) { try trainer.train() }
    }
}

import DSG
import DSGTestSupport
import Foundation
import Testing

/// The "format" metadata key of QAT checkpoints: another format is refused by name, a checkpoint written
/// before the key existed still resumes.
@Suite("QAT checkpoint format")
struct QATCheckpointFormatTests {
    static let format = "swift-dsg QAT checkpoint 1"

    /// A tiny run: two epochs of two iterations on the small BatchNorm network.
    static func configuration() -> QATConfiguration {
        var c = QATConfiguration(weightBits: 4, activationBits: 4)
        (c.epochs, c.iterationsPerEpoch, c.batchSize, c.warmupEpochs, c.calibrationEpochs) = (2, 2, 4, 0, 1)
        (c.latentDimension, c.studentLearningRate) = (8, 0.01)
        return c
    }

    /// Trains one epoch into `file`, then rewrites it with its metadata changed by `change`.
    static func checkpoint(_ teacher: Model, _ file: URL, _ change: (inout [String: String]) -> Void) throws {
        try QATTrainer(teacher: teacher, configuration: Self.configuration()).train(checkpoint: file, epochLimit: 1)
        var contents = try Safetensors.read(file)
        change(&contents.metadata)
        try Safetensors.write(contents, to: file)
    }

    @Test func checkpointsCarryTheFormat() throws {
        let folder = try TemporaryFolder("qat-format")
        let file = folder.file("qat.safetensors")
        try QATTrainer(teacher: try TestModels.batchNormNetwork(), configuration: Self.configuration())
            .train(checkpoint: file, epochLimit: 1)
        let metadata = try Safetensors.read(file).metadata
        #expect(metadata["format"] == Self.format)
        #expect(metadata["qat"] != nil)
    }

    @Test(arguments: ["swift-dsg QAT checkpoint 2", "swift-dsg classifier checkpoint 1", ""])
    func anotherFormatIsRefusedByName(format: String) throws {
        let folder = try TemporaryFolder("qat-format")
        let file = folder.file("qat.safetensors")
        let teacher = try TestModels.batchNormNetwork()
        try Self.checkpoint(teacher, file) { $0["format"] = format }
        let trainer = try QATTrainer(teacher: teacher, configuration: Self.configuration())
        let reason = "format '\(format)', not '\(Self.format)'"
        #expect(throws: QATError.checkpointMismatch(file: "qat.safetensors", reason: reason)) {
            try trainer.train(checkpoint: file)
        }
        #expect(trainer.history.isEmpty, "nothing was resumed")
    }

    @Test func aCheckpointWithoutTheFormatStillResumes() throws {
        let folder = try TemporaryFolder("qat-format")
        let file = folder.file("qat.safetensors")
        let teacher = try TestModels.batchNormNetwork()
        // As written before the key existed.
        try Self.checkpoint(teacher, file) { $0["format"] = nil }
        #expect(try Safetensors.read(file).metadata["format"] == nil)

        let resumed = try QATTrainer(teacher: teacher, configuration: Self.configuration())
        var epochs: Set<Int> = []
        try resumed.train(checkpoint: file) { epochs.insert($0.epoch) }
        #expect(epochs == [1], "only the second epoch ran")
        let whole = try QATTrainer(teacher: teacher, configuration: Self.configuration())
        try whole.train()
        #expect(resumed.history.map(\.studentLoss) == whole.history.map(\.studentLoss))
        #expect(resumed.history.map(\.generatorLoss) == whole.history.map(\.generatorLoss))
        // Once resumed, the run writes the checkpoint again, now with the format.
        #expect(try Safetensors.read(file).metadata["format"] == Self.format)
    }
}

import DSGCore
import DSGTestSupport
import Foundation
import Testing

@Suite("Classifier training")
struct TrainerTests {
    /// Two classes a small convolutional network can tell apart: horizontal vs vertical stripes, with noise.
    static func data(count: Int, seed: UInt64) -> LabeledImages {
        var g = SeededRandom(seed: seed)
        var pixels: [Float] = [], labels: [Int32] = []
        for i in 0..<count {
            let label = Int32(i % 2)
            labels.append(label)
            for y in 0..<8 {
                for x in 0..<8 {
                    pixels.append(((label == 0 ? y : x) % 2 == 0 ? 1 : -1) + g.normal(standardDeviation: 0.5))
                }
            }
        }
        return LabeledImages(images: Tensor(shape: [count, 1, 8, 8], scalars: pixels), labels: labels, classes: 2)
    }

    static func model() throws -> Model {
        var b = ModelBuilder(seed: 3)
        let x = b.input("image", [1, 8, 8])
        var h = try b.relu(
            try b.batchNorm(try b.conv2d(x, "conv", outChannels: 4, kernel: 3, padding: 1), "bn"), "relu")
        h = try b.flatten(try b.globalAvgPool(h, "pool"), "flatten")
        return b.finish(outputs: [try b.linear(h, "fc", outFeatures: 2)])
    }

    static func settings() -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.epochs = 4
        c.batchSize = 16
        c.learningRate = 0.2
        c.cropPadding = 1
        c.seed = 5
        return c
    }

    @Test func learnsAndReportsEveryEpoch() throws {
        let trainer = try ClassifierTrainer(
            model: Self.model(), configuration: Self.settings(), train: Self.data(count: 128, seed: 1),
            test: Self.data(count: 64, seed: 2))
        var calls = 0
        let history = try trainer.run(checkpoint: nil) { _ in calls += 1 }
        #expect(history.count == 4 && calls > 0)
        #expect(history.last!.testAccuracy > 0.9, "test accuracy \(history.last!.testAccuracy)")
        #expect(history.last!.trainLoss < history.first!.trainLoss)
    }

    /// A run stopped after two epochs and resumed by a new trainer ends with the same weights as a run that
    /// was never stopped: the checkpoint holds the weights, the momentum and the random generator.
    @Test func resumedRunEqualsUninterruptedRun() throws {
        let folder = try TemporaryFolder("dsg-train")
        let (train, test) = (Self.data(count: 128, seed: 1), Self.data(count: 64, seed: 2))

        let straight = try Self.model()
        let full = try ClassifierTrainer(model: straight, configuration: Self.settings(), train: train, test: test).run(
            checkpoint: nil)

        let checkpoint = folder.file("run.safetensors")
        _ = try ClassifierTrainer(model: Self.model(), configuration: Self.settings(), train: train, test: test)
            .run(checkpoint: checkpoint, epochLimit: 2)
        let resumed = try Self.model()
        let second = try ClassifierTrainer(model: resumed, configuration: Self.settings(), train: train, test: test)
        let history = try second.run(checkpoint: checkpoint)
        #expect(history.map(\.testAccuracy) == full.map(\.testAccuracy))
        for t in straight.tensors {
            let diff = zip(try resumed.tensor(named: t.name).scalars, t.tensor.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(diff == 0, "\(t.name) differs by \(diff)")
        }

        // A checkpoint made with other settings is refused, naming the file.
        var other = Self.settings()
        other.learningRate = 0.05
        #expect(
            throws: TrainingError.checkpointMismatch(
                file: "run.safetensors",
                reason: "it was made with different settings (epochs 4, batch 16, learning rate 0.2, seed 5)")
        ) {
            try ClassifierTrainer(model: Self.model(), configuration: other, train: train, test: test).run(
                checkpoint: checkpoint)
        }
    }

    @Test func impossibleSettingsAreRefused() throws {
        var c = Self.settings()
        c.batchSize = 500
        #expect(
            throws: TrainingError.invalidConfiguration("the batch size must be between 1 and the 128 training images")
        ) {
            try ClassifierTrainer(
                model: Self.model(), configuration: c, train: Self.data(count: 128, seed: 1),
                test: Self.data(count: 8, seed: 2))
        }
    }
}

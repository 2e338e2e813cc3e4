import DSG
import DSGTestSupport
import Foundation
import Testing

/// Data-parallel QAT in one process: trainers holding shares of each batch, over a ``ThreadGroup``, follow the
/// trainer that holds the whole batch.
@Suite("QAT over shares of each batch")
struct QATDataParallelTests {
    /// One iteration per epoch, so the history holds every iteration's losses; warm-up and range tracking end
    /// within the run.
    static func configuration(
        _ loss: QATConfiguration.GeneratorLoss, _ conditioning: Generator.Conditioning,
        _ range: QATConfiguration.ActivationRange
    ) -> QATConfiguration {
        var c = QATConfiguration(weightBits: 4, activationBits: 4, generatorLoss: loss)
        (c.epochs, c.iterationsPerEpoch, c.batchSize, c.warmupEpochs, c.calibrationEpochs) = (6, 1, 8, 1, 3)
        (c.latentDimension, c.studentLearningRate, c.conditioning, c.activationRange) = (8, 0.01, conditioning, range)
        return c
    }

    /// Every epoch's two losses, the student's weights and images from the generator after the run. (Not the
    /// generator's weights: the biases of its convolutions before BatchNorm have a gradient of zero but for
    /// rounding, and Adam turns that noise into steps of full size, which BatchNorm then cancels.)
    static func run(_ configuration: QATConfiguration, group: DataParallelGroup?) throws -> [String: [Double]] {
        let trainer = try QATTrainer(
            teacher: try TestModels.batchNormNetwork(), configuration: configuration, group: group)
        let history = try trainer.train()
        let student = try trainer.quantizedStudent().model.stateDict
        return [
            "generator losses": history.map(\.generatorLoss), "student losses": history.map(\.studentLoss),
            "student": student.flatMap { $0.tensor.scalars.map(Double.init) },
            "generator": try trainer.generatedImages(count: 8, seed: 1).scalars.map(Double.init),
        ]
    }

    @Test(arguments: [
        (
            QATConfiguration.GeneratorLoss.dsg, Generator.Conditioning.embedding,
            QATConfiguration.ActivationRange.batchExtremes, 2
        ),
        (.gdfq, .batchNorm, .meanSampleExtremes, 2), (.dsg, .batchNorm, .batchExtremes, 3),
    ])
    func sharesFollowTheWholeBatch(
        loss: QATConfiguration.GeneratorLoss, conditioning: Generator.Conditioning,
        range: QATConfiguration.ActivationRange, processes: Int
    ) throws {
        let configuration = Self.configuration(loss, conditioning, range)
        let whole = try Self.run(configuration, group: nil)
        let shares = try ThreadGroup.run(size: processes) { try Self.run(configuration, group: $0) }
        for (name, expected) in whole {
            for rank in 0..<processes {
                expectClose(shares[rank][name]!, expected, rtol: 1e-4, atol: 1e-5, "rank \(rank): \(name)")
            }
        }
        // Not a run that stood still: the losses moved and the student learned.
        #expect(Set(whole["student losses"]!).count > 1)
    }

    @Test func aBatchSmallerThanTheGroupIsRefused() throws {
        var small = Self.configuration(.dsg, .embedding, .batchExtremes)
        small.batchSize = 2
        let configuration = small
        let members: [Void] = try ThreadGroup.run(size: 3) { group in
            #expect(throws: QATError.invalidConfiguration("a batch of 2 cannot be shared by 3 processes")) {
                try QATTrainer(teacher: try TestModels.batchNormNetwork(), configuration: configuration, group: group)
            }
        }
        #expect(members.count == 3)
    }

    @Test func layerwiseEnhancementIsRefusedOnMoreThanOneProcess() throws {
        var enhanced = Self.configuration(.dsg, .embedding, .batchExtremes)
        enhanced.layerwiseEnhancement = true
        let configuration = enhanced
        let members: [Void] = try ThreadGroup.run(size: 2) { group in
            #expect(throws: QATError.invalidConfiguration("layerwise enhancement is not spread over processes yet")) {
                try QATTrainer(teacher: try TestModels.batchNormNetwork(), configuration: configuration, group: group)
            }
        }
        #expect(members.count == 2)
    }
}

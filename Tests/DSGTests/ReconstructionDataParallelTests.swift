import DSG
import DSGTestSupport
import Foundation
import Testing

/// Reconstruction in one process over a ``ThreadGroup``: processes computing shares of every step's batch learn
/// what one process computing the whole batch learns.
@Suite("Reconstruction over shares of each batch")
struct ReconstructionDataParallelTests {
    /// Every step's loss of every block, and the quantized model's weights and activation ranges.
    static func run(_ method: ReconstructionSettings.Method, group: DataParallelGroup?) throws -> [String: [Double]] {
        let float = try TestModels.residualNetwork()
        var random = SeededRandom(seed: 21)
        let samples = random.normalTensor([12, 1, 8, 8])
        var configuration = PTQConfiguration(weightBits: 3, activationBits: 3)
        configuration.reconstruction = ReconstructionSettings(method: method)
        configuration.reconstruction?.rounding.iterations = 25
        var losses: [Double] = []
        let quantized = try PTQCalibrator(configuration: configuration).quantize(
            float, calibration: samples, group: group
        ) { losses.append($0.loss) }
        return [
            "losses": losses,
            "model": quantized.model.stateDict.flatMap { $0.tensor.scalars.map(Double.init) },
        ]
    }

    @Test(arguments: [(ReconstructionSettings.Method.qDrop, 2), (.brecq, 3), (.adaRound, 2)])
    func sharesLearnWhatTheWholeBatchLearns(method: ReconstructionSettings.Method, processes: Int) throws {
        let whole = try Self.run(method, group: nil)
        let shares = try ThreadGroup.run(size: processes) { try Self.run(method, group: $0) }
        for rank in 0..<processes {
            expectClose(shares[rank]["losses"]!, whole["losses"]!, rtol: 1e-4, atol: 1e-7, "rank \(rank): losses")
            expectClose(shares[rank]["model"]!, whole["model"]!, rtol: 1e-4, atol: 1e-6, "rank \(rank): model")
        }
        #expect(whole["losses"]!.count > 25)
    }

    @Test func aBatchSmallerThanTheGroupIsRefused() throws {
        let members: [Void] = try ThreadGroup.run(size: 3) { group in
            let float = try TestModels.batchNormNetwork()
            var random = SeededRandom(seed: 2)
            var configuration = PTQConfiguration(weightBits: 3, activationBits: 3)
            configuration.reconstruction = ReconstructionSettings(method: .brecq)
            #expect(throws: QuantizationError.invalidReconstruction("a batch of 2 cannot be shared by 3 processes")) {
                try PTQCalibrator(configuration: configuration).quantize(
                    float, calibration: random.normalTensor([2, 1, 8, 8]), group: group)
            }
        }
        #expect(members.count == 3)
    }
}

import DSG
import DSGTestSupport
import Foundation
import Testing

@Suite("DSGLoss")
struct DSGLossTests {
    /// The whole loss and its gradient with respect to the images, through the network and every image term.
    static func lossAndGradient(
        _ loss: inout DSGLoss, _ executor: GraphExecutor, _ images: Tensor, labels: [Int32], seed: UInt64
    ) throws -> (LossTerms, [Float]) {
        var random = SeededRandom(seed: seed)  // the same jitter and correlation reference every call
        var terms = LossTerms()
        try executor.forward([images], training: false)
        executor.zeroGradients()
        try loss.networkTerms(executor, labels: labels, into: &terms)
        executor.backward(parameterGradients: false)
        var gradient = Array(executor.gradient(of: ValueID(index: 0)))
        try gradient.withUnsafeMutableBufferPointer { g in
            try images.withUnsafeBufferPointer { try loss.imageTerms($0, gradient: g, random: &random, into: &terms) }
        }
        return (terms, gradient)
    }

    static func total(_ t: LossTerms) -> Double {
        t.batchNorm + t.inputStatistics + t.crossEntropy + t.correlation + t.totalVariation + t.l2
    }

    /// Options whose only term is `term` ("all": every term), each weighted to matter at the test's tolerance.
    static func configuration(only term: String) -> GenerationConfiguration {
        var configuration = GenerationConfiguration(preset: .dsg)
        var w = GenerationConfiguration.Weights()
        w.totalVariation = 0.05
        w.correlation = 2e4
        w.l2 = 1
        w.crossEntropy = 50
        if term != "all" {
            let keep = w
            (w.batchNorm, w.inputStatistics, w.crossEntropy, w.correlation, w.totalVariation, w.l2) = (0, 0, 0, 0, 0, 0)
            switch term {
            case "batchNorm": w.batchNorm = keep.batchNorm
            case "inputStatistics": w.inputStatistics = keep.inputStatistics
            case "crossEntropy": w.crossEntropy = keep.crossEntropy
            case "correlation": w.correlation = keep.correlation
            case "totalVariation": w.totalVariation = keep.totalVariation
            default: w.l2 = keep.l2
            }
        }
        configuration.weights = w
        return configuration
    }

    @Test(arguments: ["all", "batchNorm", "inputStatistics", "crossEntropy", "correlation", "totalVariation", "l2"])
    func gradientMatchesFiniteDifferences(term: String) throws {
        let model = try TestModels.batchNormNetwork()
        let layers = model.batchNormLayers.count
        var loss = try DSGLoss(
            model: model, batchSize: 4, configuration: Self.configuration(only: term), margins: .zero(layers: layers))
        let executor = try GraphExecutor(model: model, batchSize: 4)
        executor.inputsRequireGradient = [true]
        var rng = SeededRandom(seed: 3)
        // Correlated samples (a shared component) away from mean 0 and deviation 1, so every term has a say.
        let common = rng.normalTensor([1, 1, 8, 8]).scalars
        let noise = rng.normalTensor([4, 1, 8, 8]).scalars
        let images = Tensor(
            shape: [4, 1, 8, 8], scalars: noise.indices.map { 2 * (noise[$0] + common[$0 % 64]) + 0.5 })
        let labels: [Int32] = [0, 2, 1, 2]
        let (terms, gradient) = try Self.lossAndGradient(&loss, executor, images, labels: labels, seed: 9)
        #expect(Self.total(terms) > 0.01)

        // Tolerance relative to the largest gradient entry: a gradient off by 10% anywhere fails.
        let largest = Double(gradient.map(abs).max()!)
        let h: Float = 1e-2
        for _ in 0..<16 {
            let i = rng.integer(in: 0..<images.elementCount)
            var plus = images, minus = images
            plus.withUnsafeMutableBufferPointer { $0[i] += h }
            minus.withUnsafeMutableBufferPointer { $0[i] -= h }
            let numeric =
                (Self.total(try Self.lossAndGradient(&loss, executor, plus, labels: labels, seed: 9).0)
                    - Self.total(try Self.lossAndGradient(&loss, executor, minus, labels: labels, seed: 9).0))
                / Double(2 * h)
            #expect(
                abs(Double(gradient[i]) - numeric) <= 1e-2 * largest + 2e-2 * abs(numeric),
                "\(term), pixel \(i): \(gradient[i]) vs \(numeric)")
        }
    }

    @Test func marginsThatDoNotFitTheModelAreRefused() throws {
        let model = try TestModels.batchNormNetwork()
        let configuration = GenerationConfiguration(preset: .dsg)
        #expect(throws: GenerationError.invalidConfiguration("1 margins for 2 BatchNorm layers")) {
            try DSGLoss(model: model, batchSize: 4, configuration: configuration, margins: .zero(layers: 1))
        }
        #expect(throws: GenerationError.invalidConfiguration("the batch size must be at least 1")) {
            try DSGLoss(model: model, batchSize: 0, configuration: configuration, margins: .zero(layers: 2))
        }
        // BatchNorm over features, not images: the image priors have no [C, H, W] to work on.
        var b = ModelBuilder(seed: 0)
        let features = b.input("features", [4])
        let flat = b.finish(outputs: [
            try b.linear(try b.batchNorm(try b.linear(features, "fc1", outFeatures: 3), "bn"), "fc2", outFeatures: 2)
        ])
        #expect(throws: GenerationError.invalidConfiguration("the model must take one image input [C, H, W]")) {
            try DSGLoss(model: flat, batchSize: 4, configuration: configuration, margins: .zero(layers: 1))
        }
        let perChannel = SlackMargins(mean: [[0, 0, 0], [0]], deviation: [[0], [0]])
        #expect(
            throws: GenerationError.invalidConfiguration(
                "BatchNorm layer 0 has 4 channels but 3 mean and 1 deviation margins")
        ) {
            try DSGLoss(model: model, batchSize: 4, configuration: configuration, margins: perChannel)
        }
    }
}

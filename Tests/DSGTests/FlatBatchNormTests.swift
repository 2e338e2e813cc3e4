import DSG
import DSGTestSupport
import Testing

/// A BatchNorm over features (a BatchNorm1d after a linear layer, as an imported model may have) has no plane
/// for a per-sample deviation: generation and the diversity metrics refuse it by name instead of trapping.
@Suite("BatchNorm without a plane")
struct FlatBatchNormTests {
    static func model() throws -> Model {
        var b = ModelBuilder(seed: 3)
        let x = b.input("image", [1, 4, 4])
        let h = try b.batchNorm(try b.linear(try b.flatten(x, "flat"), "fc1", outFeatures: 6), "bn")
        return b.finish(outputs: [try b.linear(try b.relu(h, "relu"), "fc2", outFeatures: 3)])
    }

    @Test func generationRefusesIt() throws {
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.iterations) = (4, 1)
        #expect(throws: GenerationError.noPlane(layer: "bn")) {
            try DSG.generateSamples(from: try Self.model(), configuration: configuration)
        }
    }

    @Test func diversityRefusesIt() throws {
        #expect(throws: GenerationError.noPlane(layer: "bn")) {
            try DiversityMetrics.measure(Tensor(shape: [3, 1, 4, 4]), model: try Self.model())
        }
    }
}

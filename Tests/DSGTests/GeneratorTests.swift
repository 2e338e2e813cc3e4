import DSG
import DSGTestSupport
import Foundation
import Testing

@Suite("Generator")
struct GeneratorTests {
    static func inputs(batch: Int, latent: Int, classes: Int, seed: UInt64) -> [Tensor] {
        var rng = SeededRandom(seed: seed)
        let labels = (0..<batch).map { _ in Float(rng.integer(in: 0..<classes)) }
        return [rng.normalTensor([batch, latent]), Tensor(shape: [batch], scalars: labels)]
    }

    @Test func makesStandardisedImagesOfTheRequestedShape() throws {
        let generator = try Generator(imageShape: [1, 28, 28], classes: 10, seed: 1)
        #expect(generator.model.inputs.map(\.shape) == [[100], []])
        let executor = try GraphExecutor(model: generator.model, batchSize: 16, backward: false)
        try executor.forward(Self.inputs(batch: 16, latent: 100, classes: 10, seed: 2), training: true)
        let images = executor.withValue(generator.model.outputs[0]) { Array($0) }
        #expect(images.count == 16 * 28 * 28)
        // The affine-free output BatchNorm standardises the batch: variance v / (v + 1e-5) for the tanh outputs'
        // variance v, which is small (about 0.005) at initialisation.
        let mean = images.reduce(0.0) { $0 + Double($1) } / Double(images.count)
        let variance = images.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(images.count)
        #expect(abs(mean) < 1e-4 && variance > 0.99 && variance <= 1, "mean \(mean), variance \(variance)")
        // GDFQ's parameter count for 28x28 (d = 100, s0 = 7, one image channel): embedding, fc, three convs,
        // the affine BatchNorms.
        let fc = 100 * 128 * 49 + 128 * 49
        let convs = (128 * 128 * 9 + 128) + (128 * 64 * 9 + 64) + (64 * 9 + 1)
        #expect(generator.model.parameterCount == 10 * 100 + fc + convs + 2 * (128 + 128 + 64))
    }

    /// The composite against PyTorch (`Fixtures/generator.json`, from generate_fixtures.py): images, gradients of
    /// `Σ images · r` and running statistics, in training mode on hashed weights. (Each layer also has its own
    /// finite-difference check in DSGCoreTests; through the output BatchNorm of a 4-image batch, central
    /// differences of the whole generator are too curved to check at Float32.)
    @Test func matchesPyTorchInTrainingMode() throws {
        let fixture = try Fixture(named: "generator.json", in: .module)
        let generator = try Generator(imageShape: [1, 28, 28], classes: 10)
        try HashedWeights.fill(generator.model, order: fixture.array("tensor_order").compactMap { $0 as? String })
        let n = Int(fixture.double("batch"))
        let z = Tensor(shape: [n, 100], scalars: (0..<(n * 100)).map { Float(HashedWeights.hashUniform(997, $0)) })
        let labels = Tensor(shape: [n], scalars: fixture.ints("labels").map(Float.init))
        let executor = try GraphExecutor(model: generator.model, batchSize: n)
        executor.inputsRequireGradient = [true, false]
        try executor.forward([z, labels], training: true)
        #expect(maxRelativeError(executor.output().scalars, fixture.floats("images"), floor: 1) < 1e-4, "images")
        executor.zeroGradients()
        let seed = executor.gradient(of: generator.model.outputs[0])
        for i in seed.indices { seed[i] = Float(HashedWeights.hashUniform(1000, i)) }
        executor.backward()
        func expectGradient(_ actual: [Float], _ key: String) {
            let expected = fixture.floats(key)
            let scale = Double(expected.map { abs($0) }.max() ?? 1)
            #expect(maxRelativeError(actual, expected, floor: scale) < 1e-4, "\(key)")
        }
        expectGradient(Array(executor.gradient(of: ValueID(index: 0))), "z_grad")
        for (name, key) in [
            ("embedding.weight", "embedding_weight_grad"), ("fc.bias", "fc_bias_grad"),
            ("conv3.weight", "conv3_weight_grad"), ("bn1.weight", "bn1_weight_grad"),
        ] {
            expectGradient(try executor.parameterGradient(named: name).scalars, key)
        }
        expectClose(
            try generator.model.tensor(named: "bn1.running_mean").scalars, fixture.floats("bn1_running_mean_after"),
            rtol: 1e-4, atol: 1e-6)
        expectClose(
            try generator.model.tensor(named: "output_bn.running_var").scalars,
            fixture.floats("output_bn_running_var_after"), rtol: 1e-4, atol: 1e-6)
    }

    /// The ImageNet form (Docs/DSG.md §10.1) at a small size: class-conditional BatchNorm instead of the embedding.
    @Test func conditionalBatchNormVariantConditionsOnTheLabel() throws {
        let generator = try Generator(
            imageShape: [3, 16, 16], classes: 4, latentDimension: 10, conditioning: .batchNorm, seed: 2)
        #expect(generator.model.nodes.filter { $0.op is ConditionalBatchNormOp }.map(\.name) == ["bn0", "bn1", "bn2"])
        #expect(generator.model.nodes.contains { $0.op is EmbeddingOp } == false)
        // Per-class scales differ from 1, so that the label matters.
        var rng = SeededRandom(seed: 8)
        try generator.model.setTensor(named: "bn2.weight", to: rng.uniformTensor([4, 64], 0.5, 1.5))
        let executor = try GraphExecutor(model: generator.model, batchSize: 4, backward: false)
        let z = rng.normalTensor([1, 10]).scalars
        let latents = Tensor(shape: [4, 10], scalars: z + z + z + z)
        try executor.forward([latents, Tensor(shape: [4], scalars: [0, 0, 1, 2])], training: true)
        let images = executor.output().scalars, size = 3 * 16 * 16
        #expect(Array(images[0..<size]) == Array(images[size..<(2 * size)]), "same latent and label: same image")
        #expect(Array(images[0..<size]) != Array(images[(2 * size)..<(3 * size)]), "another label: another image")
        #expect(images.allSatisfy { $0.isFinite })
    }

    @Test func savesLoadsAndRefusesWeightsForOtherImages() throws {
        let folder = try TemporaryFolder("generator")
        let file = folder.file("g.safetensors")
        let a = try Generator(imageShape: [1, 8, 8], classes: 3, latentDimension: 6, seed: 5)
        try a.save(to: file)
        let b = try Generator(imageShape: [1, 8, 8], classes: 3, latentDimension: 6, seed: 6)
        #expect(try b.model.tensor(named: "fc.weight").scalars != a.model.tensor(named: "fc.weight").scalars)
        try b.load(from: file)
        #expect(try b.model.tensor(named: "fc.weight").scalars == a.model.tensor(named: "fc.weight").scalars)
        let other = try Generator(imageShape: [1, 12, 12], classes: 3, latentDimension: 6)
        #expect(
            throws: GeneratorError.weightsDoNotMatch(
                file: "g.safetensors", expected: "1x12x12 images, 3 classes, latent 6, embedding conditioning",
                found: "1x8x8 images, 3 classes, latent 6, embedding conditioning")
        ) {
            try other.load(from: file)
        }
        #expect(throws: GeneratorError.unsupportedImageShape([3, 30, 30])) {
            try Generator(imageShape: [3, 30, 30], classes: 10)
        }
    }
}

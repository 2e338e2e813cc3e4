import DSG
import Foundation
import DSGTestSupport
import Testing

@Suite("Sample generation")
struct GenerationTests {
    static func configuration(_ preset: GenerationConfiguration.Preset) -> GenerationConfiguration {
        var o = GenerationConfiguration(preset: preset)
        o.count = 6
        o.batchSize = 4
        o.iterations = 60
        o.learningRate = 0.1
        return o
    }

    @Test(arguments: GenerationConfiguration.Preset.allCases)
    func everyPresetRunsAndMakesTheRequestedCount(_ preset: GenerationConfiguration.Preset) throws {
        let samples = try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: Self.configuration(preset))
        #expect(samples.images.shape == [6, 1, 8, 8])
        #expect(samples.losses.count == 2 && samples.batchSize == 4)
        #expect(samples.images.scalars.allSatisfy { $0.isFinite })
    }

    @Test func optimisationLowersTheBatchNormLoss() throws {
        var few = Self.configuration(.zeroQ)
        few.iterations = 1
        var many = Self.configuration(.zeroQ)
        many.iterations = 150
        let model = try TestModels.batchNormNetwork()
        let start = try DSG.generateSamples(from: model, configuration: few).losses[0]
        let end = try DSG.generateSamples(from: model, configuration: many).losses[0]
        #expect(end.batchNorm < 0.2 * start.batchNorm, "BatchNorm loss \(start.batchNorm) -> \(end.batchNorm)")
    }

    @Test func sameSeedSameSamples() throws {
        let model = try TestModels.batchNormNetwork()
        let a = try DSG.generateSamples(from: model, configuration: Self.configuration(.dsg))
        let b = try DSG.generateSamples(from: model, configuration: Self.configuration(.dsg))
        #expect(a.images.scalars == b.images.scalars)
        var other = Self.configuration(.dsg)
        other.seed = 1
        let c = try DSG.generateSamples(from: model, configuration: other)
        #expect(c.images.scalars != a.images.scalars)
    }

    @Test func badInputIsRefused() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [1, 4, 4])
        let plain = b.finish(outputs: [try b.linear(try b.flatten(x, "flatten"), "fc", outFeatures: 2)])
        #expect(throws: GenerationError.noBatchNorm) { try DSG.generateSamples(from: plain) }
        var zero = Self.configuration(.dsg)
        zero.count = 0
        #expect(throws: GenerationError.invalidConfiguration("the sample count must be at least 1")) { try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: zero) }
        var quantile = Self.configuration(.dsg)
        quantile.marginQuantile = 1.5
        #expect(throws: GenerationError.invalidConfiguration("the margin quantile must be between 0 and 1, got 1.5")) { try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: quantile) }
        // A learning rate so large that the loss overflows: stopped with the batch, iteration and term named.
        var wild = Self.configuration(.zeroQ)
        wild.learningRate = 1e30
        #expect(throws: GenerationError.nonFinite(batch: 0, iteration: 2, term: "network (values at 'image')")) {
            try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: wild)
        }
    }
}

@Suite("Sample sets on disk")
struct SampleSetFileTests {
    struct Stop: Error {}

    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dsg-samples-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func savesLoadsAndResumesWithoutRedoingBatches() throws {
        let model = try TestModels.batchNormNetwork()
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.batchSize, configuration.iterations) = (10, 4, 20)
        let whole = try DSG.generateSamples(from: model, configuration: configuration)

        // Stopped during the second batch: the file holds the first batch only.
        let file = try Self.folder().appendingPathComponent("run.safetensors")
        #expect(throws: Stop.self) {
            try DSG.generateSamples(from: model, configuration: configuration, checkpoint: file) { done, _ in if done > 25 { throw Stop() } }
        }
        #expect(try SampleSet.load(from: file).count == 4)
        // Resumed: only the remaining iterations run, and the samples equal an uninterrupted run's.
        var first = Int.max
        let resumed = try DSG.generateSamples(from: model, configuration: configuration, checkpoint: file) { done, _ in first = min(first, done) }
        #expect(first == 21)
        #expect(resumed.images.scalars == whole.images.scalars && resumed.losses == whole.losses)
        let loaded = try SampleSet.load(from: file)
        #expect(loaded.images.scalars == whole.images.scalars && loaded.configuration == configuration && loaded.batchSize == 4)

        // Other configuration, or a model with other inputs: refused rather than mixed.
        var other = configuration
        other.iterations = 21
        #expect(throws: SampleSetError.differentConfiguration(file: "run.safetensors")) {
            try DSG.generateSamples(from: model, configuration: other, checkpoint: file)
        }
        #expect(throws: SampleSetError.differentModel(file: "run.safetensors", expected: [1, 12, 12], found: [10, 1, 8, 8])) {
            try DSG.generateSamples(from: TestModels.batchNormNetwork(side: 12), configuration: configuration, checkpoint: file)
        }
    }

    @Test func corruptOrForeignFilesAreRefused() throws {
        let folder = try Self.folder()
        let plain = folder.appendingPathComponent("weights.safetensors")
        try Safetensors.write(Safetensors.Contents(tensors: [("w", Tensor(shape: [2]))]), to: plain)
        #expect(throws: SampleSetError.notASampleSet(file: "weights.safetensors")) { try SampleSet.load(from: plain) }
        let truncated = folder.appendingPathComponent("cut.safetensors")
        try Data([8, 0, 0, 0, 0, 0, 0, 0, 123]).write(to: truncated)
        #expect(throws: SafetensorsError.self) { try SampleSet.load(from: truncated) }
        let broken = folder.appendingPathComponent("broken.safetensors")
        try Safetensors.write(Safetensors.Contents(tensors: [("images", Tensor(shape: [2, 1, 8, 8]))], metadata: ["format": "swift-dsg sample set 1"]), to: broken)
        #expect(throws: SampleSetError.corrupt(file: "broken.safetensors", reason: "its metadata is incomplete or unreadable")) { try SampleSet.load(from: broken) }
    }
}

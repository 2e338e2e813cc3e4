import DSG
import DSGTestSupport
import Foundation
import Testing

@Suite("Sample generation")
struct GenerationTests {
    /// A preset as users get it, made small: 6 samples in batches of 4 (the second batch cut to 2). Only an
    /// explicit `iterations` overrides the preset's own count.
    static func configuration(
        _ preset: GenerationConfiguration.Preset, iterations: Int? = nil
    ) -> GenerationConfiguration {
        var o = GenerationConfiguration(preset: preset)
        o.count = 6
        o.batchSize = 4
        if let iterations { o.iterations = iterations }
        return o
    }

    static let optimised: [GenerationConfiguration.Preset] = [.zeroQ, .dsgCVPR, .dsg, .dsgCode]

    @Test(arguments: GenerationConfiguration.Preset.allCases)
    func everyPresetRunsAndMakesTheRequestedCount(_ preset: GenerationConfiguration.Preset) throws {
        // The gaussian preset with its own iteration count (0); the others briefly (debug builds are slow).
        let configuration = Self.configuration(preset, iterations: preset == .gaussian ? nil : 3)
        let samples = try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: configuration)
        #expect(samples.images.shape == [6, 1, 8, 8])
        #expect(samples.losses.count == 2 && samples.batchSize == 4)
        #expect(samples.configuration == configuration)
    }

    @Test func gaussianPresetIsTheSeededNormalDrawsUnoptimised() throws {
        let model = try TestModels.batchNormNetwork()
        var configuration = GenerationConfiguration(preset: .gaussian)
        #expect(configuration.iterations == 0)
        (configuration.count, configuration.batchSize, configuration.seed) = (40, 16, 5)
        let samples = try DSG.generateSamples(from: model, configuration: configuration)
        // Bit for bit the N(0, 1) draws of each batch's random numbers (seed + 0x9E3779B9 · (batch + 1)), the last
        // batch cut to the requested count: nothing touched them.
        let draws = (0..<3).flatMap { b in
            var random = SeededRandom(seed: 5 &+ 0x9E37_79B9 &* UInt64(b + 1))
            return random.normalTensor([16, 1, 8, 8]).scalars
        }
        #expect(samples.images.shape == [40, 1, 8, 8])
        expectClose(samples.images.scalars, Array(draws.prefix(40 * 64)), rtol: 0, atol: 0, "gaussian samples")
        #expect(samples.losses == Array(repeating: LossTerms(), count: 3), "no iteration, no loss")
        // N(0, 1): over 2560 values the mean's standard error is 0.02 and the deviation's about 0.014.
        let x = samples.images.scalars.map(Double.init)
        let mean = x.reduce(0, +) / Double(x.count)
        let deviation = (x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count - 1)).squareRoot()
        #expect(abs(mean) < 0.08 && abs(deviation - 1) < 0.06, "mean \(mean), deviation \(deviation)")
        // The seed decides: the same run again gives the same bits, another seed other values everywhere.
        let again = try DSG.generateSamples(from: model, configuration: configuration)
        #expect(again.images.scalars == samples.images.scalars)
        configuration.seed = 6
        let other = try DSG.generateSamples(from: model, configuration: configuration).images.scalars
        #expect(zip(other, samples.images.scalars).filter { $0 == $1 }.count == 0)
    }

    /// How far 30 iterations must at least bring each optimised preset's total loss (and BatchNorm term) down
    /// from its starting value. The bounds leave room: over seeds 0-2 the totals fall to at most about 0.06,
    /// 0.006, 0.86 and 0.75 of their start. The dsg preset takes its margins from its own Gaussian start, so its
    /// BatchNorm term starts near 0 and may grow while cross-entropy and the priors fall: only its total is bounded.
    static let lossFalls: [(GenerationConfiguration.Preset, total: Double, batchNorm: Double?)] = [
        (.zeroQ, 0.1, 0.1), (.dsgCVPR, 0.1, 0.1), (.dsg, 0.9, nil), (.dsgCode, 0.8, 0.5),
    ]

    @Test(arguments: lossFalls)
    func optimisationLowersTheLoss(_ preset: GenerationConfiguration.Preset, total: Double, batchNorm: Double?) throws {
        let model = try TestModels.batchNormNetwork()
        // One batch, each preset's own learning rate; the last terms of a 1-iteration run are the starting loss.
        var few = Self.configuration(preset, iterations: 1), many = Self.configuration(preset, iterations: 30)
        (few.count, many.count) = (4, 4)
        let start = try DSG.generateSamples(from: model, configuration: few).losses[0]
        let end = try DSG.generateSamples(from: model, configuration: many).losses[0]
        #expect(end.total < total * start.total, "\(preset): total loss \(start.total) -> \(end.total)")
        if let batchNorm {
            #expect(end.batchNorm < batchNorm * start.batchNorm, "\(preset): \(start.batchNorm) -> \(end.batchNorm)")
        }
    }

    @Test func marginsZeroTheSlackLossInsideThem() throws {
        let model = try TestModels.batchNormNetwork()
        // The dsg preset measures its margins on its own Gaussian starting batch, so after one iteration (the
        // loss of that batch) the 1.0-quantile margin holds every statistic: the BatchNorm term is 0, but for the
        // rounding of a margin to Float (an excess below 1e-7, squared). Narrower margins leave some statistics
        // outside, and none (ZeroQ's exact alignment) costs most. Each value is the largest over both batches.
        func batchNormTerm(_ quantile: Double?) throws -> Double {
            var configuration = Self.configuration(.dsg, iterations: 1)
            configuration.marginQuantile = quantile
            return try DSG.generateSamples(from: model, configuration: configuration).losses.map(\.batchNorm).max()!
        }
        let (all, half, none) = (try batchNormTerm(1), try batchNormTerm(0.5), try batchNormTerm(nil))
        #expect(all < 1e-12, "BatchNorm term with 1.0-quantile margins: \(all)")
        #expect(0 < half && half < none, "0.5-quantile margins \(half), no margins \(none)")

        // Margins wider than any deviation zero the loss and its gradient exactly, whatever the images.
        let layers = model.batchNormLayers.count
        let wide: [[Float]] = Array(repeating: [1e6], count: layers)
        let huge = SlackMargins(mean: wide, deviation: wide)
        var random = SeededRandom(seed: 2)
        let images = random.uniformTensor([4, 1, 8, 8], -3, 5)  // far from the Gaussian statistics
        // Cross-entropy off: the BatchNorm term alone sends gradients back to the images.
        var configuration = GenerationConfiguration(preset: .dsg)
        configuration.weights.crossEntropy = 0
        for (margins, inside) in [(huge, true), (SlackMargins.zero(layers: layers), false)] {
            var loss = try DSGLoss(model: model, batchSize: 4, configuration: configuration, margins: margins)
            let executor = try GraphExecutor(model: model, batchSize: 4)
            executor.inputsRequireGradient = [true]
            try executor.forward([images], training: false)
            executor.zeroGradients()
            var terms = LossTerms()
            try loss.networkTerms(executor, labels: [0, 1, 2, 0], into: &terms)
            executor.backward(parameterGradients: false)
            let moved = executor.gradient(of: ValueID(index: 0)).filter { $0 != 0 }.count
            if inside {
                #expect(terms.batchNorm == 0 && moved == 0, "huge margins: \(terms.batchNorm), \(moved) gradients")
            } else {
                #expect(terms.batchNorm > 0 && moved > 0, "zero margins: \(terms.batchNorm), \(moved) gradients")
            }
        }
    }

    @Test(arguments: optimised)
    func sameSeedSameSamples(_ preset: GenerationConfiguration.Preset) throws {
        let model = try TestModels.batchNormNetwork()
        let configuration = Self.configuration(preset, iterations: 3)
        let a = try DSG.generateSamples(from: model, configuration: configuration)
        let b = try DSG.generateSamples(from: model, configuration: configuration)
        #expect(a.images.scalars == b.images.scalars && a.losses == b.losses)
        var other = configuration
        other.seed = 1
        let c = try DSG.generateSamples(from: model, configuration: other)
        #expect(c.images.scalars != a.images.scalars)
    }

    @Test func badInputIsRefused() throws {
        var b = ModelBuilder(seed: 0)
        let x = b.input("image", [1, 4, 4])
        let plain = b.finish(outputs: [try b.linear(try b.flatten(x, "flatten"), "fc", outFeatures: 2)])
        #expect(throws: GenerationError.noBatchNorm) { try DSG.generateSamples(from: plain) }
        var zero = Self.configuration(.dsg, iterations: 60)
        zero.count = 0
        #expect(throws: GenerationError.invalidConfiguration("the sample count must be at least 1")) {
            try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: zero)
        }
        var quantile = Self.configuration(.dsg, iterations: 60)
        quantile.marginQuantile = 1.5
        #expect(throws: GenerationError.invalidConfiguration("the margin quantile must be between 0 and 1, got 1.5")) {
            try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: quantile)
        }
        // A learning rate so large that the loss overflows: stopped with the batch, iteration and term named.
        var wild = Self.configuration(.zeroQ, iterations: 60)
        wild.learningRate = 1e30
        #expect(throws: GenerationError.nonFinite(batch: 0, iteration: 2, term: "network (values at 'image')")) {
            try DSG.generateSamples(from: TestModels.batchNormNetwork(), configuration: wild)
        }
    }
}

@Suite("Sample sets on disk")
struct SampleSetFileTests {
    struct Stop: Error {}

    @Test func savesLoadsAndResumesWithoutRedoingBatches() throws {
        let model = try TestModels.batchNormNetwork()
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.batchSize, configuration.iterations) = (10, 4, 20)
        let whole = try DSG.generateSamples(from: model, configuration: configuration)

        // Stopped once a batch is saved: the file holds the batches finished in order from the first (one or,
        // with a batch per core at once, two), never the last, which starts only after one of them is done.
        let folder = try TemporaryFolder("dsg-samples")
        let file = folder.file("run.safetensors")
        #expect(throws: Stop.self) {
            try DSG.generateSamples(from: model, configuration: configuration, checkpoint: file) { _, _ in
                if FileManager.default.fileExists(atPath: file.path) { throw Stop() }
            }
        }
        let saved = try SampleSet.load(from: file)
        #expect((1...2).contains(saved.losses.count) && saved.count == 4 * saved.losses.count)
        let prefix = Array(whole.images.scalars.prefix(saved.images.scalars.count))
        #expect(saved.images.scalars == prefix && saved.losses == Array(whole.losses.prefix(saved.losses.count)))
        // Resumed: only the remaining iterations run, and the samples equal an uninterrupted run's.
        var first = Int.max
        let resumed = try DSG.generateSamples(from: model, configuration: configuration, checkpoint: file) { done, _ in
            first = min(first, done)
        }
        #expect(first == saved.losses.count * 20 + 1)
        #expect(resumed.images.scalars == whole.images.scalars && resumed.losses == whole.losses)
        let loaded = try SampleSet.load(from: file)
        #expect(
            loaded.images.scalars == whole.images.scalars && loaded.configuration == configuration
                && loaded.batchSize == 4)

        // Other configuration, or a model with other inputs: refused rather than mixed.
        var other = configuration
        other.iterations = 21
        #expect(throws: SampleSetError.differentConfiguration(file: "run.safetensors")) {
            try DSG.generateSamples(from: model, configuration: other, checkpoint: file)
        }
        #expect(
            throws: SampleSetError.differentModel(
                file: "run.safetensors", expected: [1, 12, 12], found: [10, 1, 8, 8])
        ) {
            try DSG.generateSamples(
                from: TestModels.batchNormNetwork(side: 12), configuration: configuration, checkpoint: file)
        }
    }

    @Test func batchesMadeAtOnceAreTheBatchesMadeOneByOne() throws {
        // Three batches on a machine with two or more cores run two at a time, each on one thread; the set must be
        // the batches made one after another, and the progress must count every iteration once.
        let model = try TestModels.batchNormNetwork()
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.batchSize, configuration.iterations) = (10, 4, 15)
        var calls: [Int] = []
        let set = try DSG.generateSamples(from: model, configuration: configuration) { done, total in
            #expect(total == 45)
            calls.append(done)
        }
        #expect(calls == Array(1...45))
        let optimizer = try SampleOptimizer(model: model, configuration: configuration)
        let batches = try (0..<3).map { try optimizer.makeBatch($0) { _ in } }
        let oneByOne = Array(batches.flatMap(\.images.scalars).prefix(10 * 64))
        #expect(set.images.scalars == oneByOne && set.losses == batches.map(\.terms))
        // A failure in one lane stops the run with that failure.
        struct Failed: Error {}
        #expect(throws: Failed.self) {
            try DSG.generateSamples(from: model, configuration: configuration) { done, _ in
                if done == 20 { throw Failed() }
            }
        }
    }

    @Test func corruptOrForeignFilesAreRefused() throws {
        let folder = try TemporaryFolder("dsg-samples")
        let plain = folder.file("weights.safetensors")
        try Safetensors.write(Safetensors.Contents(tensors: [("w", Tensor(shape: [2]))]), to: plain)
        #expect(throws: SampleSetError.notASampleSet(file: "weights.safetensors")) { try SampleSet.load(from: plain) }
        let truncated = folder.file("cut.safetensors")
        try Data([8, 0, 0, 0, 0, 0, 0, 0, 123]).write(to: truncated)
        #expect(throws: SafetensorsError.self) { try SampleSet.load(from: truncated) }
        let broken = folder.file("broken.safetensors")
        try Safetensors.write(
            Safetensors.Contents(
                tensors: [("images", Tensor(shape: [2, 1, 8, 8]))], metadata: ["format": "swift-dsg sample set 1"]),
            to: broken)
        #expect(
            throws: SampleSetError.corrupt(
                file: "broken.safetensors", reason: "its metadata is incomplete or unreadable")
        ) { try SampleSet.load(from: broken) }
    }
}

import DSG
import Foundation
import Testing

/// The public `validate()` of every configuration, one case per limit, and the coding of
/// `PTQConfiguration.ActivationCalibration` (whose old name "ema" is still read).
@Suite("Configurations")
struct ConfigurationTests {
    // MARK: - GenerationConfiguration

    @Test func generationPresetsAreValid() throws {
        for preset in GenerationConfiguration.Preset.allCases {
            try GenerationConfiguration(preset: preset).validate()
        }
    }

    @Test func generationLimits() throws {
        func refused(_ reason: String, _ change: (inout GenerationConfiguration) -> Void) {
            var c = GenerationConfiguration()
            change(&c)
            #expect(throws: GenerationError.invalidConfiguration(reason)) { try c.validate() }
        }
        refused("the sample count must be at least 1") { $0.count = 0 }
        refused("the batch size must not be negative") { $0.batchSize = -1 }
        refused("the iteration count must not be negative") { $0.iterations = -1 }
        for rate: Float in [0, -0.1, .infinity, .nan] {
            refused("the learning rate must be positive") { $0.learningRate = rate }
        }
        refused("the plateau patience must not be negative") { $0.plateauPatience = -1 }
        refused("the jitter must not be negative") { $0.jitter = -1 }
        refused("the margin quantile must be between 0 and 1, got 1.5") { $0.marginQuantile = 1.5 }
        refused("the margin quantile must be between 0 and 1, got -0.1") { $0.marginQuantile = -0.1 }

        // Each limit's edge is accepted: batch 0 means one per BatchNorm layer, no margins at all is exact alignment.
        var edge = GenerationConfiguration()
        (edge.count, edge.batchSize, edge.iterations, edge.plateauPatience, edge.jitter) = (1, 0, 0, 0, 0)
        for quantile in [0, 1, nil] as [Double?] {
            edge.marginQuantile = quantile
            try edge.validate()
        }
    }

    // MARK: - PTQConfiguration

    @Test func ptqBitWidthsAndBatchSize() throws {
        try PTQConfiguration().validate()
        for bits in [2, 8] {
            try PTQConfiguration(weightBits: bits, activationBits: bits).validate()
        }
        for bits in [1, 9] {
            #expect(throws: QuantizationError.bitWidth(bits, what: "weight")) {
                try PTQConfiguration(weightBits: bits, activationBits: 4).validate()
            }
            #expect(throws: QuantizationError.bitWidth(bits, what: "activation")) {
                try PTQConfiguration(weightBits: 4, activationBits: bits).validate()
            }
        }
        var batch = PTQConfiguration()
        batch.batchSize = 0
        #expect(throws: QuantizationError.batchSize(0)) { try batch.validate() }
        // The calibrator validates what it is given.
        #expect(throws: QuantizationError.batchSize(0)) { try PTQCalibrator(configuration: batch) }
        batch.batchSize = 1
        try batch.validate()
    }

    // MARK: - QATConfiguration

    @Test func qatLimits() throws {
        try QATConfiguration().validate()
        func refused(_ reason: String, _ change: (inout QATConfiguration) -> Void) {
            var c = QATConfiguration()
            change(&c)
            #expect(throws: QATError.invalidConfiguration(reason)) { try c.validate() }
        }
        for bits in [1, 9] {
            refused("weight bit-width \(bits) is outside 2...8") { $0.weightBits = bits }
            refused("activation bit-width \(bits) is outside 2...8") { $0.activationBits = bits }
        }
        refused("epochs and iterations per epoch must be at least 1") { $0.epochs = 0 }
        refused("epochs and iterations per epoch must be at least 1") { $0.iterationsPerEpoch = 0 }
        refused("the batch size must be at least 2 (batch statistics)") { $0.batchSize = 1 }
        refused("warm-up and calibration epochs must not be negative") { $0.warmupEpochs = -1 }
        refused("warm-up and calibration epochs must not be negative") { $0.calibrationEpochs = -1 }
        let rates = "the generator's learning rate and the temperature must be positive, the student's not negative"
        refused(rates) { $0.generatorLearningRate = 0 }
        refused(rates) { $0.studentLearningRate = -1e-4 }
        refused(rates) { $0.temperature = 0 }
        refused("the margin quantile must be between 0 and 1") { $0.marginQuantile = 1.1 }
        refused("the margin quantile must be between 0 and 1") { $0.marginQuantile = -0.1 }
        let sizes = "the latent dimension must be at least 1, the distillation weight not negative"
        refused(sizes) { $0.latentDimension = 0 }
        refused(sizes) { $0.distillationWeight = -1 }
        refused(sizes) { $0.distillationWeight = .infinity }

        // The edges: 2 and 8 bits, one epoch of one iteration, a batch of two, no warm-up, a frozen student.
        var edge = QATConfiguration(weightBits: 2, activationBits: 8)
        (edge.epochs, edge.iterationsPerEpoch, edge.batchSize) = (1, 1, 2)
        (edge.warmupEpochs, edge.calibrationEpochs, edge.studentLearningRate, edge.marginQuantile) = (0, 0, 0, 1)
        try edge.validate()
        edge.marginQuantile = 0
        try edge.validate()
    }

    // MARK: - TrainingConfiguration

    @Test func trainingLimits() throws {
        try TrainingConfiguration().validate()
        func refused(_ reason: String, _ change: (inout TrainingConfiguration) -> Void) {
            var c = TrainingConfiguration()
            change(&c)
            #expect(throws: TrainingError.invalidConfiguration(reason)) { try c.validate() }
        }
        refused("epochs must be at least 1") { $0.epochs = 0 }
        refused("the batch size must be at least 1") { $0.batchSize = 0 }
        refused("crop padding must not be negative") { $0.cropPadding = -1 }
        for rate: Float in [0, -0.1, .infinity, .nan] {
            refused("the learning rate must be positive") { $0.learningRate = rate }
        }
        for decay: Float in [-1e-4, .infinity, .nan] {
            refused("weight decay must not be negative") { $0.weightDecay = decay }
        }
        for momentum: Float in [-0.1, 1, .nan] {
            refused("momentum must be in [0, 1)") { $0.momentum = momentum }
        }

        var edge = TrainingConfiguration()
        (edge.epochs, edge.batchSize, edge.cropPadding, edge.weightDecay, edge.momentum) = (1, 1, 0, 0, 0)
        try edge.validate()
    }

    // MARK: - ActivationCalibration and its old name

    @Test func emaIsReadAsMeanSampleExtremes() throws {
        typealias Calibration = PTQConfiguration.ActivationCalibration
        #expect(Calibration(rawValue: "ema") == .meanSampleExtremes)
        #expect(try JSONDecoder().decode(Calibration.self, from: Data(#""ema""#.utf8)) == .meanSampleExtremes)
        // Written under its new name only, so files stay readable by the name the type declares.
        #expect(Calibration.meanSampleExtremes.rawValue == "meanSampleExtremes")
        #expect(
            String(decoding: try JSONEncoder().encode(Calibration.meanSampleExtremes), as: UTF8.self)
                == #""meanSampleExtremes""#)
        // Every case still reads back under its own name, and nothing else is taken.
        for calibration in Calibration.allCases {
            #expect(Calibration(rawValue: calibration.rawValue) == calibration)
            let encoded = try JSONEncoder().encode(calibration)
            #expect(try JSONDecoder().decode(Calibration.self, from: encoded) == calibration)
        }
        #expect(Calibration.allCases.map(\.rawValue) == ["minMax", "meanSampleExtremes", "percentile", "mse"])
        #expect(Calibration(rawValue: "EMA") == nil && Calibration(rawValue: "") == nil)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Calibration.self, from: Data(#""emas""#.utf8)) }
    }

    @Test func olderPTQSettingsWithEmaDecode() throws {
        // What the synthesised encoder wrote when the case was still called `ema`.
        let old = #"""
            {"weightBits":3,"activationBits":5,"weightRange":"mse","activationCalibration":"ema",\#
            "edgeLayers":"eightBit","foldBatchNorm":true,"batchSize":32}
            """#
        let decoded = try JSONDecoder().decode(PTQConfiguration.self, from: Data(old.utf8))
        var expected = PTQConfiguration(weightBits: 3, activationBits: 5)
        (expected.weightRange, expected.activationCalibration) = (.mse, .meanSampleExtremes)
        (expected.edgeLayers, expected.foldBatchNorm, expected.batchSize) = (.eightBit, true, 32)
        #expect(decoded == expected)
        // Written again, it carries the new name.
        let rewritten = String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self)
        #expect(rewritten.contains(#""activationCalibration":"meanSampleExtremes""#))
        #expect(!rewritten.contains("ema\""))
    }
}

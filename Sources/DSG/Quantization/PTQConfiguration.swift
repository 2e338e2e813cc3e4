import DSGCore

/// Settings of post-training quantization (Docs/DSG.md §8).
public struct PTQConfiguration: Sendable, Codable, Equatable {
    /// Bits of every quantized convolution and linear weight (2 to 8), per output channel.
    public var weightBits = 4
    /// Bits of every activation after a ReLU, ReLU6 or clip (2 to 8), per tensor.
    public var activationBits = 4

    /// How each output channel's weight range is chosen.
    public enum WeightRange: String, Sendable, Codable, CaseIterable {
        /// The channel's minimum and maximum.
        case minMax
        /// The minimum and maximum shrunk by the factor (1, 0.99, ..., 0.5) with the least squared error.
        case mse
        /// Symmetric about 0 for `m`, the channel's largest magnitude: step `m / (2^(k−1) − 1)`, so that `±m` are
        /// levels and the zero point is 0 (ONNX's INT8 zero point 0), as runtimes that take only symmetric weights
        /// require.
        case symmetric
    }

    /// How the range of each activation (after every ReLU, ReLU6 and clip) is estimated from the calibration samples.
    public enum ActivationCalibration: String, Sendable, Codable, CaseIterable {
        /// Running minimum and maximum over all batches (ZeroQ).
        case minMax
        /// The mean over samples of each sample's minimum and maximum, then the running extremes over batches.
        /// The official DSG code calls this `ema`, though it averages nothing over time; `"ema"` is still read
        /// (files and the command line) as this case.
        case meanSampleExtremes
        /// The 0.001% and 99.999% percentiles of each batch, then the running extremes.
        case percentile
        /// From the extremes over all batches, the upper end lowered in steps of 1% (80 tries) to the least
        /// squared quantization error summed over every calibration sample (a second pass over the batches).
        case mse

        /// The case named `rawValue`, accepting the official code's name `"ema"` for ``meanSampleExtremes``.
        public init?(rawValue: String) {
            switch rawValue {
            case "minMax": self = .minMax
            case "meanSampleExtremes", "ema": self = .meanSampleExtremes
            case "percentile": self = .percentile
            case "mse": self = .mse
            default: return nil
            }
        }
    }

    /// What happens to the first convolution and the last linear layer.
    public enum EdgeLayers: String, Sendable, Codable, CaseIterable {
        /// Quantized like every other layer (ZeroQ and DSG).
        case quantize
        /// Kept in Float32.
        case fullPrecision
        /// Quantized to 8 bits whatever `weightBits` says.
        case eightBit
    }

    /// How each weight channel's range is chosen (the paper: min/max).
    public var weightRange: WeightRange = .minMax
    /// How activation ranges are estimated (the official code's estimate by default).
    public var activationCalibration: ActivationCalibration = .meanSampleExtremes
    /// What happens to the first and last layers (ZeroQ and DSG quantize them like the rest).
    public var edgeLayers: EdgeLayers = .quantize
    /// Fold each BatchNorm into the convolution before it, then quantize the folded weights (DSG keeps
    /// BatchNorm in Float32, so this is off by default).
    public var foldBatchNorm = false
    /// Quantize for integer kernels (onnxruntime's QLinearConv and QLinearAdd, and other runtimes' like them):
    /// BatchNorm folded, a quantizer also after every convolution and residual sum whose output no quantized
    /// activation takes (a convolution before a sum; a sum that feeds the next block), weight ranges widened to
    /// hold zero (an INT8 zero point), and biases on the integer grid of input step × weight step, so that the QDQ
    /// export fuses into integer operators and our evaluation computes what they do. Off by default (DSG's scheme).
    public var integerKernels = false
    /// Reconstruction PTQ (Docs/DSG.md §8.6): learn the weights' rounding with AdaRound layer by layer, or with
    /// BRECQ or QDrop block by block together with the activation step sizes, in graph order, on the inputs the
    /// already quantized layers before give, against the float model's outputs; nil rounds to the nearest level
    /// (the paper's PTQ).
    public var reconstruction: ReconstructionSettings?
    /// Calibration samples per forward pass.
    public var batchSize = 64

    /// W`weightBits`A`activationBits` with every other setting at its default.
    public init(weightBits: Int = 4, activationBits: Int = 4) {
        (self.weightBits, self.activationBits) = (weightBits, activationBits)
    }

    /// "W4A4".
    public var label: String { "W\(weightBits)A\(activationBits)" }

    private enum CodingKeys: String, CodingKey {
        case weightBits, activationBits, weightRange, activationCalibration, edgeLayers, foldBatchNorm, integerKernels
        case batchSize, reconstruction
    }

    /// Files written before BRECQ and QDrop held an AdaRound schedule under `adaRound`.
    private enum LegacyKeys: String, CodingKey { case adaRound }

    /// Decodes a configuration; settings added later (`integerKernels`) default when a file has none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        weightBits = try c.decode(Int.self, forKey: .weightBits)
        activationBits = try c.decode(Int.self, forKey: .activationBits)
        weightRange = try c.decode(WeightRange.self, forKey: .weightRange)
        activationCalibration = try c.decode(ActivationCalibration.self, forKey: .activationCalibration)
        edgeLayers = try c.decode(EdgeLayers.self, forKey: .edgeLayers)
        foldBatchNorm = try c.decode(Bool.self, forKey: .foldBatchNorm)
        integerKernels = try c.decodeIfPresent(Bool.self, forKey: .integerKernels) ?? false
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        reconstruction = try c.decodeIfPresent(ReconstructionSettings.self, forKey: .reconstruction)
        if reconstruction == nil,
            let schedule = try decoder.container(keyedBy: LegacyKeys.self).decodeIfPresent(
                AdaRoundSchedule.self, forKey: .adaRound)
        {
            reconstruction = ReconstructionSettings(method: .adaRound)
            reconstruction?.rounding = schedule
        }
    }

    /// Checks the bit-widths (2 to 8) and the batch size.
    public func validate() throws(QuantizationError) {
        try UniformQuantizer.validate(weightBits, "weight")
        try UniformQuantizer.validate(activationBits, "activation")
        guard batchSize >= 1 else { throw .batchSize(batchSize) }
        try reconstruction?.validate()
    }
}

import DSGCore

/// How one convolution's or linear layer's weight was quantized: one quantizer per output channel (a row of
/// the weight), read by the ONNX export to write the integer weight and its per-channel scale and zero point.
public struct WeightQuantization: Sendable, Codable, Equatable {
    /// The layer (the node owning `<layer>.weight`).
    public let layer: String
    /// The bit-width.
    public let bits: Int
    /// Output channel o's quantizer; the layer's weights lie on its grid.
    public let quantizers: [UniformQuantizer]
    /// With ``PTQConfiguration/integerKernels``, the step of each output channel's bias (input step × weight
    /// step), whose multiples the bias is rounded to; nil when the bias stays Float32.
    public let biasSteps: [Float]?

    /// The record of `layer`'s weight quantized to `bits` by `quantizers`, one per output channel, its bias on
    /// `biasSteps` when given.
    public init(layer: String, bits: Int, quantizers: [UniformQuantizer], biasSteps: [Float]? = nil) {
        (self.layer, self.bits, self.quantizers, self.biasSteps) = (layer, bits, quantizers, biasSteps)
    }
}

/// One activation quantizer: the fake-quantization node after an activation, with its calibrated range.
public struct ActivationQuantization: Sendable, Equatable {
    /// The activation it follows (`stage1.block0.relu1`).
    public let activation: String
    /// The fake-quantization node (`stage1.block0.relu1.quant`).
    public let node: String
    /// The bit-width.
    public let bits: Int
    /// The calibrated range.
    public let low: Float, high: Float

    /// The quantizer the node applies.
    public var quantizer: UniformQuantizer { UniformQuantizer(bits: bits, low: low, high: high) }
}

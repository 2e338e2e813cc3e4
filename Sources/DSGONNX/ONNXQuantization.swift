/// What a QDQ export writes for a quantized model, in ONNX's convention `x̂ = (q − zeroPoint) · scale`: integer
/// weights with one scale and zero point per output channel, and a QuantizeLinear/DequantizeLinear pair for
/// every fake-quantization node. The quantized model (in `DSG`) computes these from its quantizers.
public struct ONNXQuantization: Sendable {
    /// An integer weight dequantized per output channel (`axis` 0): INT8 with a zero point per channel, or, for
    /// a layer with a channel whose zero point no INT8 holds (its range excludes zero, at 8 bits), INT32 levels
    /// relative to the zero point (ONNX's INT32 DequantizeLinear takes no zero point).
    public struct Weight: Sendable, Equatable {
        /// The integer weight, in the layer's weight layout: INT8 values, or INT32 ones when `zeroPoints` is nil.
        public let values: [Int]
        /// Each output channel's step (ONNX's `x_scale`).
        public let scales: [Float]
        /// Each output channel's INT8 zero point; nil for INT32 values.
        public let zeroPoints: [Int]?
        /// The bias as INT32 multiples of a step per output channel (input step × weight step, what integer
        /// kernels add to their sums), or nil for a Float32 bias.
        public let bias: Bias?

        /// An INT32 bias dequantized per output channel.
        public struct Bias: Sendable, Equatable {
            /// The integer bias.
            public let values: [Int]
            /// Each output channel's step.
            public let scales: [Float]

            /// A bias of `values` times `scales`.
            public init(values: [Int], scales: [Float]) { (self.values, self.scales) = (values, scales) }
        }

        /// A weight of `values` dequantized with `scales` and `zeroPoints` (INT8), or without (INT32) when nil,
        /// with an INT32 `bias` when given.
        public init(values: [Int], scales: [Float], zeroPoints: [Int]?, bias: Bias? = nil) {
            (self.values, self.scales, self.zeroPoints, self.bias) = (values, scales, zeroPoints, bias)
        }
    }

    /// An activation quantizer: QuantizeLinear then DequantizeLinear at one scale and zero point, per tensor.
    public struct Activation: Sendable, Equatable {
        /// The step (`y_scale`).
        public let scale: Float
        /// The zero point, an INT8 or UINT8 value.
        public let zeroPoint: Int
        /// Whether the integer type is INT8 (else UINT8).
        public let signed: Bool
        /// The range of the grid's levels, `(first level − zeroPoint) · scale ... (last level − zeroPoint) · scale`,
        /// clipped to before quantizing when the grid has fewer levels than the 8-bit type (a k-bit quantizer);
        /// nil at 8 bits, where QuantizeLinear's saturation is the grid's end.
        public let clip: (low: Float, high: Float)?

        /// An activation quantizer of `scale` and `zeroPoint` in INT8 (`signed`) or UINT8, clipped to `clip` first.
        public init(scale: Float, zeroPoint: Int, signed: Bool, clip: (low: Float, high: Float)?) {
            (self.scale, self.zeroPoint, self.signed, self.clip) = (scale, zeroPoint, signed, clip)
        }

        /// Equal scale, zero point, type and clip (a tuple, which Swift does not compare by itself).
        public static func == (a: Activation, b: Activation) -> Bool {
            a.scale == b.scale && a.zeroPoint == b.zeroPoint && a.signed == b.signed && a.clip?.low == b.clip?.low
                && a.clip?.high == b.clip?.high
        }
    }

    /// The integer weights, by layer (the node owning `<layer>.weight`).
    public var weights: [String: Weight]
    /// The activation quantizers, by fake-quantization node (whose operator kind is `FakeQuant`).
    public var activations: [String: Activation]

    /// A description of `weights` and `activations`.
    public init(weights: [String: Weight] = [:], activations: [String: Activation] = [:]) {
        (self.weights, self.activations) = (weights, activations)
    }
}

import DSGCore

/// Why a quantization setting is impossible.
public enum QuantizationError: Error, Equatable, CustomStringConvertible {
    /// A bit-width outside 2...8; `what` is "weight" or "activation".
    case bitWidth(Int, what: String)
    /// An empty calibration set.
    case noCalibrationSamples
    /// Calibration samples that are not `[N] + ` the model's per-sample input shape.
    case calibrationShape(expected: Shape, got: Shape)
    /// A calibration batch size below 1.
    case batchSize(Int)
    /// A quantizer whose zero point no 8-bit ONNX integer type holds (a range far from zero), so `node` cannot be
    /// written in QDQ form.
    case zeroPointRange(node: String)
    /// A quantized value that no ONNX integer type holds (a non-finite weight or range, a bias beyond INT32, or a
    /// file saved without its weight quantizers), so `node` cannot be written in QDQ form.
    case notExportable(node: String, reason: String)
    /// Reconstruction (AdaRound) asked for something it cannot do: a layer of another kind, inputs of the wrong
    /// shape, impossible settings, or a non-finite loss.
    case invalidReconstruction(String)

    /// One line naming the setting and the value.
    public var description: String {
        switch self {
        case .bitWidth(let bits, let what): return "\(what) bit-width \(bits) is outside 2...8"
        case .noCalibrationSamples: return "calibration needs at least one sample"
        case .calibrationShape(let expected, let got):
            return "calibration samples must have shape [N] + \(expected), got \(got)"
        case .batchSize(let size): return "the calibration batch size must be at least 1, got \(size)"
        case .zeroPointRange(let node):
            return "\(node): the quantizer's range lies so far from zero that no 8-bit zero point represents it"
        case .notExportable(let node, let reason): return "\(node) cannot be written in QDQ form: \(reason)"
        case .invalidReconstruction(let reason): return "reconstruction: \(reason)"
        }
    }
}

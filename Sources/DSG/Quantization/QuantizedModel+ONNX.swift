import DSGCore
import DSGONNX
import Foundation

extension QuantizedModel {
    /// The model's quantizers in ONNX's convention (`x̂ = (q − zero point) · scale`, Docs/DSG.md §8.1): for our
    /// `x̂ = (q + zero) / s` with `q` in `[−2^(k−1), 2^(k−1) − 1]`, the scale is ``UniformQuantizer/stepSize``;
    /// weights are INT8 `q` with zero point `−zero` (INT32 `q + zero` for a layer with a channel whose zero point
    /// INT8 does not hold: a range that excludes zero, at 8 bits); activations are UINT8 `q + 2^(k−1)` with zero
    /// point `2^(k−1) − zero` (INT8 as the weights' when that does not fit), clipped to the k-bit grid first below
    /// 8 bits. Throws ``QuantizationError/zeroPointRange(node:)`` for an activation range that excludes zero by
    /// more than its grid, and ``QuantizationError/notExportable(node:reason:)`` for values no ONNX integer holds.
    public var onnxQuantization: ONNXQuantization {
        get throws {
            var result = ONNXQuantization()
            if weights.isEmpty, let layer = PTQCalibrator.quantizedNodes(of: model).weights.first {
                throw QuantizationError.notExportable(
                    node: layer.name, reason: "the file was saved without its weight quantizers; quantize it again")
            }
            for record in weights {
                let w = try model.tensor(named: record.layer + ".weight")
                let size = w.elementCount / w.shape[0]
                guard record.quantizers.count == w.shape[0], w.scalars.allSatisfy(\.isFinite),
                    record.quantizers.allSatisfy({ $0.levelsPerUnit.isFinite && $0.zeroPoint.isFinite })
                else {
                    throw QuantizationError.notExportable(
                        node: record.layer, reason: "its quantizers do not fit its \(w.shape) finite weight")
                }
                var levels: [Int] = []
                levels.reserveCapacity(w.elementCount)
                for (o, q) in record.quantizers.enumerated() {
                    for x in w.scalars[(o * size)..<((o + 1) * size)] { levels.append(q.level(of: x)) }
                }
                let zeroPoints = record.quantizers.map { -Int($0.zeroPoint) }
                var weight: ONNXQuantization.Weight
                if zeroPoints.allSatisfy({ (-128...127).contains($0) }) {
                    weight = .init(values: levels, scales: record.quantizers.map(\.stepSize), zeroPoints: zeroPoints)
                } else {
                    // INT32 levels relative to each channel's zero point: (q + zero) · step is the same value.
                    let values = levels.enumerated().map { i, q in q - zeroPoints[i / size] }
                    weight = .init(values: values, scales: record.quantizers.map(\.stepSize), zeroPoints: nil)
                }
                if let steps = record.biasSteps, let b = try? model.tensor(named: record.layer + ".bias") {
                    let levels = zip(b.scalars, steps).map { ($0 / $1).rounded(.toNearestOrEven) }
                    guard steps.count == b.elementCount, levels.allSatisfy({ abs($0) < 0x1p31 }) else {
                        throw QuantizationError.notExportable(node: record.layer, reason: "its bias exceeds INT32")
                    }
                    let values = levels.map { Int($0) }
                    weight = .init(
                        values: weight.values, scales: weight.scales, zeroPoints: weight.zeroPoints,
                        bias: .init(values: values, scales: steps))
                }
                result.weights[record.layer] = weight
            }
            for a in activations {
                guard a.low.isFinite, a.high.isFinite else {
                    throw QuantizationError.notExportable(node: a.node, reason: "its range [\(a.low), \(a.high)]")
                }
                let q = a.quantizer, half = 1 << (a.bits - 1)
                let unsigned = half - Int(q.zeroPoint), signed = -Int(q.zeroPoint)
                let (zero, isSigned, first): (Int, Bool, Int)
                if (0...255).contains(unsigned) {
                    (zero, isSigned, first) = (unsigned, false, 0)
                } else if (-128...127).contains(signed) {
                    (zero, isSigned, first) = (signed, true, -half)
                } else {
                    throw QuantizationError.zeroPointRange(node: a.node)
                }
                let last = first + (1 << a.bits) - 1
                let clip =
                    a.bits < 8
                    ? (low: Float(first - zero) * q.stepSize, high: Float(last - zero) * q.stepSize) : nil
                result.activations[a.node] = ONNXQuantization.Activation(
                    scale: q.stepSize, zeroPoint: zero, signed: isSigned, clip: clip)
            }
            return result
        }
    }

    /// Writes the quantized model as ONNX in QDQ form (onnxruntime and other runtimes run it), atomically.
    public func writeONNX(to url: URL) throws {
        try ONNXExport.write(model, quantization: try onnxQuantization, to: url)
    }
}

import DSGCore
import DSGKernels
import Foundation

/// The uniform asymmetric quantizer of ZeroQ and DSG (Docs/DSG.md §8.1) for the range `[low, high]`:
///
/// ```
/// s = (2^k − 1) / max(high − low, 1e-8)       zero = round(s · low) + 2^(k−1)
/// q = clamp(round(s · x − zero), −2^(k−1), 2^(k−1) − 1)       x̂ = (q + zero) / s
/// ```
///
/// with rounding half to even, as PyTorch's `round`. `low` and `high` map (up to rounding of the zero point) to
/// the ends of 2^k levels.
public struct UniformQuantizer: Sendable, Equatable, Codable {
    /// The bit-width k.
    public let bits: Int
    /// `s` above: quantization levels per unit of the input. This is the *inverse* of what ONNX
    /// (`QuantizeLinear`'s `y_scale`) and PyTorch (`scale`) call the scale, the width of one step: see ``stepSize``.
    public let levelsPerUnit: Float
    /// `zero` above, in the signed convention of the formula (q is centred on 0), not ONNX's unsigned zero point.
    public let zeroPoint: Float

    /// The bit-widths this quantizer supports (2 to 8, as ZeroQ and DSG measure).
    public static let bitRange = 2...8

    /// The quantizer whose 2^`bits` levels span `[low, high]` (up to the rounding of the zero point); `bits`
    /// must be in ``bitRange`` (check user input with ``validate(_:_:)``).
    public init(bits: Int, low: Float, high: Float) {
        precondition(Self.bitRange.contains(bits), "UniformQuantizer: bits must be in 2...8 (validate first).")
        self.bits = bits
        levelsPerUnit = Float(Double((1 << bits) - 1) / max(Double(high) - Double(low), 1e-8))
        zeroPoint = (levelsPerUnit * low).rounded(.toNearestOrEven) + Float(1 << (bits - 1))
    }

    private enum CodingKeys: String, CodingKey { case bits, levelsPerUnit, zeroPoint }

    /// Decodes a quantizer saved with a model, refusing a bit-width outside ``bitRange`` or values that are not
    /// finite (a damaged file must not quantize with them).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bits = try c.decode(Int.self, forKey: .bits)
        levelsPerUnit = try c.decode(Float.self, forKey: .levelsPerUnit)
        zeroPoint = try c.decode(Float.self, forKey: .zeroPoint)
        guard Self.bitRange.contains(bits), levelsPerUnit.isFinite, levelsPerUnit > 0, zeroPoint.isFinite else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: c.codingPath, debugDescription: "a quantizer of \(bits) bits, s \(levelsPerUnit)"))
        }
    }

    /// The width of one quantization step, `1 / levelsPerUnit`: ONNX's and PyTorch's `scale`.
    public var stepSize: Float { 1 / levelsPerUnit }

    /// The integer level of `x`, in `[−2^(k−1), 2^(k−1) − 1]`: `x` quantize-dequantizes to
    /// `(level + zeroPoint) / levelsPerUnit`.
    public func level(of x: Float) -> Int { Int(clampedLevel(x)) }

    /// The quantize-dequantize value of `x`.
    @inline(__always)
    public func callAsFunction(_ x: Float) -> Float { (clampedLevel(x) + zeroPoint) / levelsPerUnit }

    /// `q` of the formula above, as a Float (the fake-quantization loop never leaves Float).
    @inline(__always)
    private func clampedLevel(_ x: Float) -> Float {
        let half = Float(1 << (bits - 1))
        return min(max((levelsPerUnit * x - zeroPoint).rounded(.toNearestOrEven), -half), half - 1)
    }

    /// Quantize-dequantizes `rows` rows of `size` values at `w` in place, each row (a weight's output channel)
    /// with the quantizer `quantizer` chooses for it. (It keeps no quantizer, so a training step allocates nothing;
    /// ``quantizers(ofRows:size:_:)`` keeps them.)
    package static func quantizeRows(
        _ w: UnsafeMutablePointer<Float>, rows: Int, size: Int,
        quantizer: (UnsafeMutableBufferPointer<Float>) -> UniformQuantizer
    ) {
        for o in 0..<rows {
            let row = UnsafeMutableBufferPointer(start: w + o * size, count: size)
            let q = quantizer(row)
            for i in row.indices { row[i] = q(row[i]) }
        }
    }

    /// The quantizer `quantizer` chooses for each of the `rows` rows of `size` values at `w`.
    package static func quantizers(
        ofRows w: UnsafeMutableBufferPointer<Float>, size: Int,
        _ quantizer: (UnsafeMutableBufferPointer<Float>) -> UniformQuantizer
    ) -> [UniformQuantizer] {
        (0..<(w.count / size)).map { o in
            quantizer(UnsafeMutableBufferPointer(rebasing: w[(o * size)..<((o + 1) * size)]))
        }
    }

    /// Quantize-dequantizes row `o` of the `size`-value rows at `w` with `quantizers[o]`, in place.
    package static func apply(_ quantizers: [UniformQuantizer], toRows w: UnsafeMutableBufferPointer<Float>, size: Int)
    {
        for (o, q) in quantizers.enumerated() { for i in (o * size)..<((o + 1) * size) { w[i] = q(w[i]) } }
    }

    /// Of `candidates`, the range whose quantizer gives the least squared error on `values` (the first on
    /// ties): the one search behind the `mse` weight and activation ranges, which differ only in their candidates.
    static func leastSquaredErrorRange<C: Collection<Float>>(
        _ values: C, bits: Int, candidates: [(low: Float, high: Float)]
    ) -> (low: Float, high: Float) {
        candidates[leastIndex(squaredErrors(values, bits: bits, candidates: candidates))]
    }

    /// The squared quantization error of `values` under each candidate range, summed in Double: errors of several
    /// batches add up to the error of all of them.
    static func squaredErrors<C: Collection<Float>>(
        _ values: C, bits: Int, candidates: [(low: Float, high: Float)]
    ) -> [Double] {
        let quantizers = candidates.map { UniformQuantizer(bits: bits, low: $0.low, high: $0.high) }
        return values.withContiguousStorageIfAvailable { squaredErrors($0, quantizers) }
            ?? Array(values).withUnsafeBufferPointer { squaredErrors($0, quantizers) }
    }

    /// The search's inner loop, which ran for most of a `mse` calibration: eight candidates at a time in SIMD lanes,
    /// each element read once for all of them, and the groups of eight split over the cores. Every candidate's
    /// error is computed with the same Float operations as ``callAsFunction(_:)`` and added up in Double in the
    /// same order as one loop per candidate would, so the results are bit-identical to that loop's. Rounding is
    /// done after clamping to the levels (the same for integer bounds), where adding and subtracting 1.5·2^23
    /// rounds half to even exactly.
    private static func squaredErrors(_ values: UnsafeBufferPointer<Float>, _ quantizers: [UniformQuantizer])
        -> [Double]
    {
        typealias Lanes = SIMD8<Float>
        guard let bits = quantizers.first?.bits else { return [] }
        let half = Float(1 << (bits - 1)), magic = Lanes(repeating: 12_582_912)
        let (lowest, highest) = (Lanes(repeating: -half), Lanes(repeating: half - 1))
        let groups = (quantizers.count + Lanes.scalarCount - 1) / Lanes.scalarCount
        var errors = [Double](repeating: 0, count: groups * Lanes.scalarCount)
        errors.withUnsafeMutableBufferPointer { errors in
            Parallel.forEachChunk(of: groups) { range, _ in
                for group in range {
                    // Unused lanes repeat the last candidate and are dropped below.
                    var s = Lanes(repeating: 1), z = Lanes(repeating: 0)
                    for lane in 0..<Lanes.scalarCount {
                        let q = quantizers[min(group * Lanes.scalarCount + lane, quantizers.count - 1)]
                        (s[lane], z[lane]) = (q.levelsPerUnit, q.zeroPoint)
                    }
                    var low = SIMD4<Double>(), high = SIMD4<Double>()
                    for x in values {
                        let xs = Lanes(repeating: x)
                        let level = ((s * xs - z).clamped(lowerBound: lowest, upperBound: highest) + magic) - magic
                        let d = (level + z) / s - xs, e = d * d
                        low += SIMD4<Double>(e.lowHalf)
                        high += SIMD4<Double>(e.highHalf)
                    }
                    for lane in 0..<4 {
                        errors[group * Lanes.scalarCount + lane] = low[lane]
                        errors[group * Lanes.scalarCount + 4 + lane] = high[lane]
                    }
                }
            }
        }
        return Array(errors.prefix(quantizers.count))
    }

    /// The index of the least error (the first on ties).
    static func leastIndex(_ errors: [Double]) -> Int {
        var best = 0
        for i in errors.indices where errors[i] < errors[best] { best = i }
        return best
    }

    /// Checks a bit-width from user input.
    public static func validate(_ bits: Int, _ what: String) throws(QuantizationError) {
        guard bitRange.contains(bits) else { throw .bitWidth(bits, what: what) }
    }
}

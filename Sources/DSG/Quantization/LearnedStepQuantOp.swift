import DSGCore

/// An activation quantizer whose step size is learned (LSQ, Esser et al. 2020), as block reconstruction
/// (BRECQ, QDrop) uses it in place of a ``FakeQuantOp``; with a drop probability `p` it is QDrop's quantizer.
///
/// With step `Δ` (the parameter `step`) and the fixed zero point `z` (the buffer `zeroPoint`, in
/// ``UniformQuantizer``'s signed convention), each element becomes
///
///     q = clamp(round(x·(1/Δ) − z), −2^(k−1), 2^(k−1) − 1),    x̂ = Δ·(q + z)
///
/// (`x` times the inverse of `Δ`, as ``UniformQuantizer`` and PyTorch's learnable fake quantization compute it; a
/// step taken from a calibrated range gives that range's grid up to the rounding of `1/(1/s)`, which can move a
/// value lying exactly between two levels)
///
/// and, during reconstruction, its float value `x` instead with probability `p` (the buffer `drop`:
/// `[p, seed, first]`, element-wise and independent, redrawn for every new seed; the draws depend on the seed and
/// the op's `salt` only, and form one sequence over the samples of a batch, of which this executor holds those
/// from sample `first` on: 0 unless it holds one share of a batch spread over processes). Backward: `dx̂/dx` is 1 inside the
/// range and 0 where `q` is clamped (the straight-through estimator with LSQ's clipping), and
/// `dx̂/dΔ = q + z − x/Δ` inside, `q + z` where clamped; an element that kept its float value passes its
/// gradient to `x` and none to `Δ`.
public struct LearnedStepQuantOp: GraphOperator {
    /// The bit-width k (2 to 8).
    public let bits: Int
    /// Mixed into the drop seed, so that two quantizers of one block draw different elements.
    public let salt: UInt64
    /// "LearnedStepQuant", in error messages.
    public var kind: String { "LearnedStepQuant" }

    /// A `bits`-bit quantizer; set its tensors (``init(bits:salt:)`` leaves step 1, zero point 0, no drop).
    public init(bits: Int, salt: UInt64 = 0) { (self.bits, self.salt) = (bits, salt) }

    /// The input's shape: one input, element-wise.
    public func outputShape(for inputs: [Shape], node: String) throws(GraphError) -> Shape {
        guard inputs.count == 1 else {
            throw .shapeMismatch(node: node, op: kind, inputs: inputs, expected: "one input")
        }
        return inputs[0]
    }

    /// `step` (learned), `zeroPoint` and `drop` (`[probability, seed]`), buffers.
    public var tensorSpecs: [TensorSpec] {
        [
            TensorSpec("step", [1], .parameter, .constant(1)), TensorSpec("zeroPoint", [1], .buffer, .constant(0)),
            TensorSpec("drop", [3], .buffer, .constant(0)),
        ]
    }

    /// Quantizes every element, keeping the float value of each with the drop probability.
    public func forward(_ c: NodeContext) throws(GraphError) {
        let step = c.tensors[0][0], inverse = 1 / step, zero = c.tensors[1][0], half = Float(1 << (bits - 1))
        let (x, y) = (c.inputs[0], c.output)
        var drop = DropDraws(c, salt: salt)
        for i in 0..<c.outputCount {
            let q = min(max((x[i] * inverse - zero).rounded(.toNearestOrEven), -half), half - 1)
            y[i] = drop.next() ? x[i] : step * (q + zero)
        }
    }

    /// LSQ's gradients (type doc), with the forward's drops drawn again from the same seed.
    public func backward(_ c: NodeContext) {
        let step = c.tensors[0][0], inverse = 1 / step, zero = c.tensors[1][0], half = Float(1 << (bits - 1))
        let (x, dy) = (c.inputs[0], c.outputGrad)
        var drop = DropDraws(c, salt: salt)
        var dStep = 0.0
        for i in 0..<c.outputCount {
            let u = x[i] * inverse - zero, q = u.rounded(.toNearestOrEven)
            if drop.next() || (q >= -half && q <= half - 1) {
                c.inputGrads[0]?[i] += dy[i]
                if !drop.last { dStep += Double(dy[i] * (q - u)) }
            } else {
                dStep += Double(dy[i] * (min(max(q, -half), half - 1) + zero))
            }
        }
        c.tensorGrads[0]?[0] += Float(dStep)
    }
}

/// The element-wise drop decisions of one pass: the same sequence in forward and backward for one seed.
private struct DropDraws {
    let probability: Float
    var random: SeededRandom
    /// The last decision.
    var last = false

    init(_ c: NodeContext, salt: UInt64) {
        probability = c.tensors[2][0]
        /// A count stored as a Float; anything else (negative, not finite, huge) counts as 0.
        func count(_ value: Float) -> UInt64 { value.isFinite && value >= 0 && value < 0x1p63 ? UInt64(value) : 0 }
        random = SeededRandom(seed: count(c.tensors[2][1]) &* 0x9E37_79B9_7F4A_7C15 ^ salt)
        // The draws of the samples before this executor's first, as one executor holding them would make.
        guard probability > 0 else { return }
        for _ in 0..<(count(c.tensors[2][2]) * UInt64(c.outputCount / c.batch)) { _ = random.uniform() }
    }

    /// Whether the next element keeps its float value.
    mutating func next() -> Bool {
        last = probability > 0 && random.uniform() < probability
        return last
    }
}

import DSGCore

/// Weights and inputs from an integer hash that `Tests/DSGCoreTests/Fixtures/generate_fixtures.py` evaluates
/// too, so a parity test with PyTorch needs no weight file: each function is the twin of the script's function
/// of the same name.
public enum HashedWeights {
    /// Twin of `hash_uniform`: a value in [-1, 1) from (index, i).
    public static func hashUniform(_ index: Int, _ i: Int) -> Double {
        var h = (UInt64(i) &* 2_654_435_761 &+ UInt64(index) &* 40503 &+ 12345) & 0xFFFF_FFFF
        h ^= h >> 16
        h = (h &* 73_244_475) & 0xFFFF_FFFF
        h ^= h >> 16
        return 2 * Double(h) / 4_294_967_296 - 1
    }

    /// Twin of `formula_value`.
    public static func formulaValue(kind: String, index: Int, i: Int, fanIn: Int) -> Float {
        let s = hashUniform(index, i)
        switch kind {
        case "weight_conv", "weight_linear": return Float(s * (6.0 / Double(fanIn)).squareRoot())
        case "bn_weight": return Float(1 + 0.2 * s)
        case "bias", "bn_bias", "running_mean": return Float(0.1 * s)
        default: return Float(0.6 + 0.4 * s * s)  // running_var
        }
    }

    /// Twin of `kind_of`.
    public static func kind(_ name: String, rank: Int) -> String {
        let leaf = name.split(separator: ".").last.map(String.init) ?? name
        if leaf == "running_mean" || leaf == "running_var" { return leaf }
        let isBN = ("." + name).contains(".bn")
        if leaf == "weight" { return isBN ? "bn_weight" : (rank == 4 ? "weight_conv" : "weight_linear") }
        return isBN ? "bn_bias" : "bias"
    }

    /// Sets every tensor of `model` as the script does, `order` being its tensor order (the fixture's
    /// `tensor_order`, PyTorch's `state_dict` order, which the hash index follows).
    public static func fill(_ model: Model, order: [String]) throws {
        for (index, name) in order.enumerated() {
            let shape = try model.tensor(named: name).shape
            let fanIn = shape.rank > 1 ? shape.elementCount / shape[0] : 1
            let values = (0..<shape.elementCount).map {
                formulaValue(kind: kind(name, rank: shape.rank), index: index, i: $0, fanIn: fanIn)
            }
            try model.setTensor(named: name, to: Tensor(shape: shape, scalars: values))
        }
    }
}

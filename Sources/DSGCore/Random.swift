import Foundation

/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64) so every run is reproducible
/// across machines. Normals use the Box-Muller transform in Double.
public struct SeededRandom: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The four 64-bit words of xoshiro256** state, never all zero; saved in checkpoints so a resumed run continues
    /// the same sequence.
    public var state: [UInt64] { [s0, s1, s2, s3] }
    /// The state words themselves: four stored words, not an array, so that making a generator allocates nothing
    /// (operators make one per pass).
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Expands `seed` into the four state words with SplitMix64: one seed gives one sequence on every machine.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix()
        s1 = splitMix()
        s2 = splitMix()
        s3 = splitMix()
    }

    /// Encoded as hexadecimal strings: JSON numbers lose 64-bit integers on their way through Double.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(state.map { String($0, radix: 16) })
    }

    /// Decodes the state written by ``encode(to:)``; throws `DecodingError.dataCorrupted` unless it is four
    /// hexadecimal words, not all zero.
    public init(from decoder: any Decoder) throws {
        let words = try decoder.singleValueContainer().decode([String].self)
        let state = words.compactMap { UInt64($0, radix: 16) }
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "a generator state is four non-zero hexadecimal words"))
        }
        (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
    }

    /// The next 64 random bits (xoshiro256**), advancing the state.
    public mutating func next() -> UInt64 {
        let result = rotate(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotate(s3, 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in `[low, high)`.
    public mutating func uniform(_ low: Float = 0, _ high: Float = 1) -> Float {
        // 24 random bits give every representable step of a Float in [0, 1).
        let unit = Float(next() >> 40) * 0x1p-24
        return low + (high - low) * unit
    }

    /// Normal with the given mean and standard deviation.
    public mutating func normal(mean: Float = 0, standardDeviation: Float = 1) -> Float {
        let first = next()
        return Self.normal(bits: first, next(), mean: mean, standardDeviation: standardDeviation)
    }

    /// The normal that ``normal(mean:standardDeviation:)`` makes of its two draws of 64 bits, `first` and
    /// `second`: so the draws can be made in order and the transforms elsewhere (on several cores).
    public static func normal(bits first: UInt64, _ second: UInt64, mean: Float = 0, standardDeviation: Float = 1)
        -> Float
    {
        let u1 = (Double(first >> 11) + 1) * 0x1p-53  // (0, 1]: the logarithm stays finite
        let u2 = Double(second >> 11) * 0x1p-53
        let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return mean + standardDeviation * Float(z)
    }

    /// Uniform integer in `range` (which must not be empty), by Lemire's multiply-shift on 32 random bits:
    /// written out rather than `Int.random(in:using:)` so the sequence cannot change with the standard library.
    public mutating func integer(in range: Range<Int>) -> Int {
        precondition(!range.isEmpty && range.count <= 1 << 32, "integer(in:): the range must hold 1 to 2^32 values.")
        return range.lowerBound + Int(((next() >> 32) * UInt64(range.count)) >> 32)
    }

    /// A tensor of independent uniform values in `[low, high)`.
    public mutating func uniformTensor(_ shape: Shape, _ low: Float = 0, _ high: Float = 1) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.elementCount).map { _ in uniform(low, high) })
    }

    /// A tensor of independent normal values.
    public mutating func normalTensor(_ shape: Shape, mean: Float = 0, standardDeviation: Float = 1) -> Tensor {
        Tensor(
            shape: shape,
            scalars: (0..<shape.elementCount).map { _ in normal(mean: mean, standardDeviation: standardDeviation) })
    }
}

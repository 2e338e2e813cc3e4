import DSGKernels
import Testing

/// The vectorized backward passes against their one-line definitions, element by element: on a length that leaves
/// a scalar tail, with inputs exactly on the kinks (0, 6, the clip bounds) and NaN, where a select written the
/// other way round would differ. Large buffers (split over the cores) are compared too.
@Suite("Activation kernels")
struct ActivationTests {
    static let cases: [(Activation, @Sendable (Float) -> Bool)] = [
        (.relu, { $0 > 0 }),
        (.relu6, { $0 > 0 && $0 < 6 }),
        (.clip(lower: -1, upper: 2.5), { $0 > -1 && $0 < 2.5 }),
    ]

    @Test(arguments: [37, 1 << 16 + 3])
    func backwardPassesTheGradientExactlyWhereTheDefinitionDoes(count: Int) {
        let special: [Float] = [0, 6, -1, 2.5, .nan, -0.0, 7, -3]
        let x = (0..<count).map { i in i % 5 == 0 ? special[(i / 5) % special.count] : Float((i * 37) % 29) / 3 - 4 }
        let dy = (0..<count).map { Float(($0 * 13) % 11) - 5 }
        for (activation, passes) in Self.cases {
            var dx = (0..<count).map { Float($0 % 7) }
            let y = [Float](repeating: 0, count: count)
            activation.backward(input: x, output: y, outputGrad: dy, inputGrad: &dx, count: count)
            let expected = (0..<count).map { Float($0 % 7) + (passes(x[$0]) ? dy[$0] : 0) }
            #expect(dx == expected, "\(activation)")
        }
    }
}

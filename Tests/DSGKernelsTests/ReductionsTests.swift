import DSGKernels
import Testing

@Suite("Reductions")
struct ReductionsTests {
    @Test(arguments: [0, 1, 3, 4, 7, 1001])
    func sumsMatchASimpleLoop(count: Int) {
        let x = (0..<count).map { Float(($0 * 37) % 19) * 0.25 - 2 }
        let reference = x.reduce(0.0) { $0 + Double($1) }
        let mean = count > 0 ? reference / Double(count) : 0
        let squares = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }
        #expect(abs(Reductions.sum(x, count: count) - reference) < 1e-9)
        #expect(abs(Reductions.squaredDeviations(x, count: count, mean: mean) - squares) < 1e-9)
    }
}

import DSGTestSupport
import Testing

@testable import DSG

/// The `mse` range search's vectorized error sums against one plain loop per candidate, to the last bit: the
/// search compares sums that can differ in their last digits, so a different sum could pick another range.
@Suite("The mse range search")
struct SquaredErrorSearchTests {
    @Test(arguments: [2, 3, 4, 8])
    func errorsEqualOneLoopPerCandidateExactly(bits: Int) {
        var random = SeededRandom(seed: UInt64(bits))
        // 1,003 values (no multiple of a vector), some far outside every candidate range, and exact zeros.
        let values = random.normalTensor([1003]).scalars.enumerated().map { i, v in
            i % 97 == 0 ? 0 : i % 89 == 0 ? 40 * v : 3 * v
        }
        // 13 candidates: a whole group of eight lanes and a partial one.
        let candidates = (0..<13).map { k in (low: Float(-2.5) + Float(k) * 0.1, high: Float(7) - Float(k) * 0.45) }
        let expected = candidates.map { c -> Double in
            let q = UniformQuantizer(bits: bits, low: c.low, high: c.high)
            var sum = 0.0
            for x in values { sum += Double((q(x) - x) * (q(x) - x)) }
            return sum
        }
        #expect(UniformQuantizer.squaredErrors(values, bits: bits, candidates: candidates) == expected)
        #expect(UniformQuantizer.squaredErrors(values[...], bits: bits, candidates: []) == [])
    }
}

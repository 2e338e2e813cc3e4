import DSG
import DSGTestSupport
import Foundation
import Testing

/// Central differences of a scalar function of `x` in Double, at `indices`.
func numericGradient(_ x: [Float], at indices: [Int], step: Float = 1e-2, _ f: ([Float]) throws -> Double) rethrows
    -> [Double]
{
    try indices.map { i in
        var plus = x, minus = x
        plus[i] += step
        minus[i] -= step
        return (try f(plus) - f(minus)) / Double(2 * step)
    }
}

@Suite("DSG loss terms")
struct LossTermTests {
    static func randomBatch(_ count: Int, seed: UInt64, scale: Float = 1, shift: Float = 0) -> [Float] {
        var g = SeededRandom(seed: seed)
        return (0..<count).map { _ in shift + scale * g.normal() }
    }

    @Test func sampleStatisticsMatchDefinitionsAndGradient() {
        let (n, c, plane) = (2, 3, 5)
        let a = Self.randomBatch(n * c * plane, seed: 1, scale: 2, shift: 0.5)
        var s = SampleStatistics(batch: n, channels: c, plane: plane)
        a.withUnsafeBufferPointer { s.measure($0) }
        let row = Array(a[5..<10]).map(Double.init)
        let mean = row.reduce(0, +) / 5
        let unbiased = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4
        #expect(
            abs(Double(s.means[1]) - mean) < 1e-6
                && abs(Double(s.deviations[1]) - (unbiased + 1e-6).squareRoot()) < 1e-6)

        // L = Σ p·m + q·s for fixed p, q: the backward pass against central differences.
        let p = Self.randomBatch(n * c, seed: 2), q = Self.randomBatch(n * c, seed: 3)
        func loss(_ x: [Float]) -> Double {
            var t = SampleStatistics(batch: n, channels: c, plane: plane)
            x.withUnsafeBufferPointer { t.measure($0) }
            return (0..<(n * c)).reduce(0.0) { $0 + Double(p[$1] * t.means[$1] + q[$1] * t.deviations[$1]) }
        }
        var g = [Float](repeating: 0, count: a.count)
        a.withUnsafeBufferPointer { buffer in
            g.withUnsafeMutableBufferPointer {
                s.backward(activation: buffer, meanGradient: p, deviationGradient: q, into: $0)
            }
        }
        let numeric = numericGradient(a, at: Array(0..<a.count), loss)
        for i in a.indices { #expect(abs(numeric[i] - Double(g[i])) < 2e-4 + 1e-3 * abs(numeric[i]), "element \(i)") }
    }

    static func statistics(_ means: [Float], _ deviations: [Float], batch: Int) -> SampleStatistics {
        // Two-value planes [m - s/√2, m + s/√2] have mean m and unbiased deviation sqrt(s² + 1e-6) ≈ s.
        var st = SampleStatistics(batch: batch, channels: means.count / batch, plane: 2)
        let root2 = Float(2).squareRoot()
        var values: [Float] = []
        for (m, s) in zip(means, deviations) { values += [m - s / root2, m + s / root2] }
        values.withUnsafeBufferPointer { st.measure($0) }
        return st
    }

    @Test func slackAlignmentIsZeroInsideTheMarginAndZeroQWithoutIt() {
        let st = Self.statistics([0.3, -0.2, 1.0, 0.1], [1.2, 0.9, 1.0, 1.1], batch: 2)
        var dm = [Float](repeating: 9, count: 4), ds = dm
        let generous = SlackAlignment(
            targetMean: [0.2, 0], targetDeviation: [1, 1], meanMargin: [1], deviationMargin: [0.5])
        #expect(generous.evaluate(st, weights: [1, 1], meanGradient: &dm, deviationGradient: &ds) == 0)
        #expect(dm.allSatisfy { $0 == 0 } && ds.allSatisfy { $0 == 0 })

        // Zero margins: ZeroQ's Σ_{n,c} (m − μ)² + (s − σ)², divided by N.
        let exact = SlackAlignment(
            targetMean: [0.2, 0], targetDeviation: [1, 1], meanMargin: [0], deviationMargin: [0])
        let value = exact.evaluate(st, weights: [1, 1], meanGradient: &dm, deviationGradient: &ds)
        var zeroQ = 0.0
        for i in 0..<4 {
            let c = i % 2
            zeroQ += pow(Double(st.means[i]) - [0.2, 0][c], 2) + pow(Double(st.deviations[i]) - 1, 2)
        }
        #expect(abs(value - zeroQ / 2) < 1e-7)  // targets are Float, the reference uses Double literals
        // The hinge: |Δ| beyond the margin, squared; gradient 2·excess·sign(Δ)/N.
        let m = SlackAlignment(targetMean: [0, 0], targetDeviation: [1, 1], meanMargin: [0.25], deviationMargin: [10])
        let v = m.evaluate(st, weights: [1, 1], meanGradient: &dm, deviationGradient: &ds)
        let expected = [0.3, -0.2, 1.0, 0.1].map { max(abs($0) - 0.25, 0) }.map { $0 * $0 }.reduce(0, +) / 2
        #expect(abs(v - expected) < 1e-6)
        #expect(abs(Double(dm[2]) - 2 * 0.75 / 2) < 1e-6 && dm[1] == 0)
    }

    @Test func enhancementWeights() {
        // All ones equals plain slack alignment; the paper doubles layer n mod L for sample n.
        #expect(LayerEnhancement.none.weights(layer: 1, layers: 3, batch: 4) == [1, 1, 1, 1])
        #expect(LayerEnhancement.paper(factor: 2).weights(layer: 1, layers: 3, batch: 5) == [1, 2, 1, 1, 2])
        // With N = L every sample doubles exactly its own layer: the diagonal of I + 11ᵀ.
        let l = 4
        for layer in 0..<l {
            #expect(
                LayerEnhancement.paper(factor: 2).weights(layer: layer, layers: l, batch: l)
                    == (0..<l).map { $0 == layer ? 2 : 1 })
        }
        // The official code: ×2 on the hinge (×4 on its square) where n == l, first min(N, 20) samples only.
        #expect(
            LayerEnhancement.code(layerCount: 20).weights(layer: 21, layers: 25, batch: 25)
                == Array(repeating: 1, count: 25))
        #expect(LayerEnhancement.code(layerCount: 20).weights(layer: 3, layers: 25, batch: 25)[3] == 4)
        let st = Self.statistics([0.3, -0.2, 1.0, 0.1], [1.2, 0.9, 1.0, 1.1], batch: 2)
        var dm = [Float](repeating: 0, count: 4), ds = dm
        let sda = SlackAlignment(
            targetMean: [0, 0], targetDeviation: [1, 1], meanMargin: [0.1], deviationMargin: [0.05])
        let plain = sda.evaluate(st, weights: [1, 1], meanGradient: &dm, deviationGradient: &ds)
        let ones = sda.evaluate(
            st, weights: LayerEnhancement.paper(factor: 1).weights(layer: 0, layers: 2, batch: 2), meanGradient: &dm,
            deviationGradient: &ds)
        #expect(plain == ones)
    }

    @Test func correlationAgainstIdentityIsTheFrobeniusDistance() throws {
        let (n, d) = (5, 12)
        let x = Self.randomBatch(n * d, seed: 4)
        let sci = CorrelationInhibition(batch: n, dimension: d)
        var g = SeededRandom(seed: 0)
        let value = try x.withUnsafeBufferPointer { try sci.evaluate($0, reference: .identity, random: &g) }
        // ||S − I||_F² with S the cosine-similarity matrix.
        var frobenius = 0.0
        for i in 0..<n {
            for j in 0..<n {
                let a = x[(i * d)..<((i + 1) * d)], b = x[(j * d)..<((j + 1) * d)]
                let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(),
                    nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                let s = dot / (na * nb) - (i == j ? 1 : 0)
                frobenius += s * s
            }
        }
        #expect(abs(value - 1e-4 * frobenius / Double(n)) < 1e-12)
        #expect(abs(sci.eigenvalues.reduce(0, +) - Double(n)) < 1e-9)  // trace of a cosine Gram = N
    }

    @Test func correlationGradientMatchesFiniteDifferences() throws {
        let (n, d) = (4, 6)
        // Correlated samples (a shared component), so the loss is far from its minimum.
        let shared = Self.randomBatch(d, seed: 5)
        let x = Self.randomBatch(n * d, seed: 6).enumerated().map { $0.element * 0.5 + shared[$0.offset % d] }
        let reference: [Double] = [0.5, 0.8, 1.1, 1.6]
        let sci = CorrelationInhibition(batch: n, dimension: d)
        var rng = SeededRandom(seed: 0)
        var g = [Float](repeating: 0, count: x.count)
        _ = try x.withUnsafeBufferPointer { xs in
            try g.withUnsafeMutableBufferPointer {
                try sci.evaluate(xs, reference: .values(reference), random: &rng, gradient: $0, gradientScale: 1e4)
            }
        }
        let numeric = try numericGradient(x, at: Array(x.indices), step: 1e-3) { y in
            try y.withUnsafeBufferPointer { try sci.evaluate($0, reference: .values(reference), random: &rng) * 1e4 }
        }
        for i in x.indices {
            #expect(
                abs(numeric[i] - Double(g[i])) < 1e-4 + 1e-3 * abs(numeric[i]), "element \(i): \(numeric[i]) vs \(g[i])"
            )
        }
    }

    @Test(arguments: [0, 1, -2])
    func imagePriorGradientsMatchFiniteDifferences(jitter: Int) {
        let shape: Shape = [2, 1, 4, 5]
        let x = Self.randomBatch(shape.elementCount, seed: 7)
        var g = [Float](repeating: 0, count: x.count)
        _ = x.withUnsafeBufferPointer { xs in
            g.withUnsafeMutableBufferPointer {
                ImagePriors.totalVariation(xs, shape: shape, jitter: jitter, gradient: $0, gradientScale: 1)
            }
        }
        _ = x.withUnsafeBufferPointer { xs in
            g.withUnsafeMutableBufferPointer { ImagePriors.l2(xs, batch: 2, gradient: $0, gradientScale: 1) }
        }
        let numeric = numericGradient(x, at: Array(x.indices)) { y in
            y.withUnsafeBufferPointer {
                ImagePriors.totalVariation($0, shape: shape, jitter: jitter, gradient: nil, gradientScale: 1)
                    + ImagePriors.l2($0, batch: 2, gradient: nil, gradientScale: 1)
            }
        }
        for i in x.indices { #expect(abs(numeric[i] - Double(g[i])) < 2e-4 + 1e-3 * abs(numeric[i]), "element \(i)") }
        // Rolling does not change the L2 prior; a constant image has no total variation.
        let flat = [Float](repeating: 0.7, count: x.count)
        #expect(
            flat.withUnsafeBufferPointer {
                ImagePriors.totalVariation($0, shape: shape, jitter: jitter, gradient: nil, gradientScale: 1)
            } == 0)
    }

    @Test func quantilesInterpolateLikeNumPy() {
        // numpy.quantile([1, 2, 3, 4], 0.9) == 3.7; [5] -> 5; 0 and 1 are the extremes.
        #expect(abs(SlackMargins.quantile([4, 1, 3, 2], 0.9) - 3.7) < 1e-12)
        #expect(SlackMargins.quantile([5], 0.3) == 5)
        #expect(SlackMargins.quantile([3, 9, 1], 0) == 1 && SlackMargins.quantile([3, 9, 1], 1) == 9)
    }
}

import DSG
import Testing

@Suite("Diversity metrics")
struct DiversityMetricsTests {
    @Test func identicalImagesHaveNoDiversity() throws {
        let model = try GenerationTests.model()
        var g = SeededGenerator(seed: 1)
        let one = g.normalTensor([1, 1, 8, 8]).scalars
        let m = try DiversityMetrics.measure(Tensor(shape: [4, 1, 8, 8], scalars: one + one + one + one), model: model)
        #expect(m.meanSpread.allSatisfy { $0 < 1e-6 } && m.deviationSpread.allSatisfy { $0 < 1e-6 })
        #expect(abs(m.meanAbsoluteCosine - 1) < 1e-9 && abs(m.effectiveRank - 1) < 1e-6)
        #expect(m.meanSpread.count == 2 && m.alignmentResidual.count == 2)
    }

    @Test func orthogonalImagesSpanEveryDirection() throws {
        let model = try GenerationTests.model()
        // Four images, each non-zero on its own quarter of the pixels: pairwise orthogonal, equal norms.
        var images = [Float](repeating: 0, count: 4 * 64)
        for i in 0..<4 { for p in (16 * i)..<(16 * i + 16) { images[i * 64 + p] = Float(1 + p % 3) } }
        let m = try DiversityMetrics.measure(Tensor(shape: [4, 1, 8, 8], scalars: images), model: model, batchSize: 3)
        #expect(m.meanAbsoluteCosine < 1e-12 && abs(m.effectiveRank - 4) < 1e-9)
        #expect(m.meanSpread.allSatisfy { $0 > 0 })
    }
}

import DSG
import DSGTestSupport
import Testing

@Suite("Diversity metrics")
struct DiversityMetricsTests {
    @Test func identicalImagesHaveNoDiversity() throws {
        let model = try TestModels.batchNormNetwork()
        var g = SeededRandom(seed: 1)
        let one = g.normalTensor([1, 1, 8, 8]).scalars
        let m = try DiversityMetrics.measure(Tensor(shape: [4, 1, 8, 8], scalars: one + one + one + one), model: model)
        #expect(m.meanSpread.allSatisfy { $0 < 1e-6 } && m.deviationSpread.allSatisfy { $0 < 1e-6 })
        #expect(abs(m.meanAbsoluteCosine - 1) < 1e-9 && abs(m.effectiveRank - 1) < 1e-6)
        #expect(m.meanSpread.count == 2 && m.alignmentResidual.count == 2)
        // Four copies of one image fall in one class, the one the model gives the first copy.
        let executor = try GraphExecutor(model: model, batchSize: 1, backward: false)
        try executor.forward([Tensor(shape: [1, 1, 8, 8], scalars: one)], training: false)
        let logits = executor.output().scalars
        let top = logits.indices.max { logits[$0] < logits[$1] }!
        #expect(m.predictedClasses == (0..<3).map { $0 == top ? 4 : 0 })
    }

    @Test func orthogonalImagesSpanEveryDirection() throws {
        let model = try TestModels.batchNormNetwork()
        // Four images, each non-zero on its own quarter of the pixels: pairwise orthogonal, equal norms.
        var images = [Float](repeating: 0, count: 4 * 64)
        for i in 0..<4 { for p in (16 * i)..<(16 * i + 16) { images[i * 64 + p] = Float(1 + p % 3) } }
        let m = try DiversityMetrics.measure(Tensor(shape: [4, 1, 8, 8], scalars: images), model: model, batchSize: 3)
        #expect(m.meanAbsoluteCosine < 1e-12 && abs(m.effectiveRank - 4) < 1e-9)
        #expect(m.meanSpread.allSatisfy { $0 > 0 })
        #expect(
            m.predictedClasses.count == 3 && m.predictedClasses.reduce(0, +) == 4, "counted across batches of 3 and 1")
    }
}

@Suite("Scatter plots")
struct ScatterPlotTests {
    @Test func svgHasEveryPointALegendAndEscapedText() throws {
        let plot = ScatterPlot(
            title: "a < b & c", xLabel: "mean", yLabel: "deviation",
            series: [
                .init(name: "real", color: "#2ca02c", points: [(0, 1), (0.5, 2), (1, 3)]),
                .init(name: "dsg", color: "#1f77b4", points: [(0.2, 1.5), (.nan, 1)]),
            ])
        let svg = plot.svg()
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        // 4 finite points plus one legend marker per series; the NaN point is left out.
        #expect(svg.components(separatedBy: "<circle").count - 1 == 4 + 2)
        #expect(svg.contains("a &lt; b &amp; c") && svg.contains("real (3)") && svg.contains("dsg (2)"))
    }
}

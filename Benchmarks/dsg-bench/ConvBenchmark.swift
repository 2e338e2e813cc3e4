import DSGCore
import DSGKernels

/// One convolution shape measured three ways (forward, backward-data, backward-weight), each beside the
/// same GEMM calls made by OpenBLAS alone on a ready patch matrix (no im2col or col2im), split over the cores
/// exactly as the convolution splits its batch, so the ratio is what our lowering costs.
struct ConvResult: Codable {
    let model: String
    let layer: String
    /// How many convolutions of the model have this geometry.
    let occurrences: Int
    let batch: Int
    let gemm: String
    let forwardGFLOPS: Double, forwardSGEMMGFLOPS: Double
    let backwardDataGFLOPS: Double, backwardDataSGEMMGFLOPS: Double
    let backwardWeightGFLOPS: Double, backwardWeightSGEMMGFLOPS: Double
    var forwardRatio: Double { forwardGFLOPS / forwardSGEMMGFLOPS }
    var backwardDataRatio: Double { backwardDataGFLOPS / backwardDataSGEMMGFLOPS }
    var backwardWeightRatio: Double { backwardWeightGFLOPS / backwardWeightSGEMMGFLOPS }

    enum CodingKeys: String, CodingKey {
        case model, layer, occurrences, batch, gemm, forwardGFLOPS, forwardSGEMMGFLOPS, backwardDataGFLOPS,
            backwardDataSGEMMGFLOPS
        case backwardWeightGFLOPS, backwardWeightSGEMMGFLOPS
    }
}

enum ConvBenchmark {
    /// The distinct convolution geometries of a model in order of first appearance: the first layer's name
    /// and the number of layers with that geometry.
    static func distinctConvolutions(_ model: Model) -> [(name: String, geometry: ConvGeometry, count: Int)] {
        var result: [(name: String, geometry: ConvGeometry, count: Int)] = []
        for node in model.nodes {
            guard let op = node.op as? Conv2dOp else { continue }
            if let i = result.firstIndex(where: { $0.geometry == op.geometry }) {
                result[i].count += 1
            } else {
                result.append((node.name, op.geometry, 1))
            }
        }
        return result
    }

    /// Forward GFLOP/s of all the model's convolutions together (each distinct shape counted as often as it
    /// occurs), ours and the SGEMM reference's.
    static func wholeModelForward(_ results: [ConvResult], flops: [Double]) -> (ours: Double, sgemm: Double) {
        var total = 0.0, ours = 0.0, reference = 0.0
        for (r, f) in zip(results, flops) {
            let work = f * Double(r.occurrences)
            total += work
            ours += work / r.forwardGFLOPS
            reference += work / r.forwardSGEMMGFLOPS
        }
        return (total / ours, total / reference)
    }

    static func measure(
        model: String, layer: String, _ g: ConvGeometry, occurrences: Int, batch: Int, minimumTime: Double
    ) -> ConvResult {
        let chunks = Parallel.chunkCount(batch)
        let x = Buffer(batch * g.inChannels * g.inputPlane), w = Buffer(g.weightCount)
        let y = Buffer(batch * g.outChannels * g.outputPlane), dy = Buffer(batch * g.outChannels * g.outputPlane)
        let dx = Buffer(x.count), dw = Buffer(w.count * chunks)
        let ws = Buffer(Conv2D.workspaceCount(g, batch: batch))
        let cols = Buffer(g.columnCount * chunks)  // a ready patch matrix per chunk for the GEMM-only runs
        let flops = g.flopsPerSample * Double(batch)
        let (plane, patch, og) = (g.outputPlane, g.groupPatchSize, g.groupOutChannels)
        /// GFLOP/s of `body` and of the same GEMM calls alone: `call(sample, group, chunk's patch matrix, chunk)`.
        func rates(_ body: () -> Void, gemm call: @escaping (Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) -> (
            Double, Double
        ) {
            let (t, tg) = Harness.pairedMedians(repetitions: 5, minimumTime: minimumTime, body) {
                Parallel.forEachChunk(of: batch) { samples, chunk in
                    for n in samples {
                        for k in 0..<g.groups {
                            call(n, k, cols.pointer + chunk * g.columnCount + k * patch * plane, chunk)
                        }
                    }
                }
            }
            return (flops / t / 1e9, flops / tg / 1e9)
        }

        let (forward, forwardGEMM) = rates(
            {
                Conv2D.forward(
                    g, batch: batch, input: x.pointer, weight: w.pointer, bias: nil, output: y.pointer,
                    workspace: ws.pointer)
            },
            gemm: { n, k, columns, _ in
                let t = Conv2D.forwardTransposesWeights(g)  // the call our forward pass makes
                BLAS.sgemm(
                    t ? .transposed : .none, .none, m: og, n: plane, k: patch, a: w.pointer + k * og * patch,
                    lda: t ? og : patch,
                    b: columns, ldb: plane, c: y.pointer + (n * g.groups + k) * og * plane, ldc: plane)
            })
        let (data, dataGEMM) = rates(
            {
                Conv2D.backwardData(
                    g, batch: batch, outputGrad: dy.pointer, weight: w.pointer, inputGrad: dx.pointer,
                    workspace: ws.pointer
                )
            },
            gemm: { n, k, columns, _ in
                BLAS.sgemm(
                    .transposed, .none, m: patch, n: plane, k: og, a: w.pointer + k * og * patch, lda: patch,
                    b: dy.pointer + (n * g.groups + k) * og * plane, ldb: plane, c: columns, ldc: plane)
            })
        let (weight, weightGEMM) = rates(
            {
                Conv2D.backwardWeight(
                    g, batch: batch, input: x.pointer, outputGrad: dy.pointer, weightGrad: dw.pointer, biasGrad: nil,
                    workspace: ws.pointer)
            },
            gemm: { n, k, columns, chunk in
                BLAS.sgemm(
                    .none, .transposed, m: og, n: patch, k: plane, a: dy.pointer + (n * g.groups + k) * og * plane,
                    lda: plane,
                    b: columns, ldb: plane, beta: 1, c: dw.pointer + chunk * g.weightCount + k * og * patch, ldc: patch)
            })
        return ConvResult(
            model: model, layer: "\(layer): \(g)", occurrences: occurrences, batch: batch,
            gemm: "\(batch * g.groups) x (\(og)x\(plane)x\(patch))",
            forwardGFLOPS: forward, forwardSGEMMGFLOPS: forwardGEMM,
            backwardDataGFLOPS: data, backwardDataSGEMMGFLOPS: dataGEMM,
            backwardWeightGFLOPS: weight, backwardWeightSGEMMGFLOPS: weightGEMM)
    }
}

import DSGCore
import DSGKernels

/// One convolution shape measured three ways (forward, backward-data, backward-weight), each beside the
/// same GEMM calls made by OpenBLAS alone on a ready patch matrix (no im2col or col2im), split over the cores
/// exactly as the convolution splits its batch, so the ratio is what our lowering costs.
struct ConvResult: Codable {
    let model: String
    let layer: String
    let batch: Int
    let gemm: String
    let forwardGFLOPS: Double, forwardSGEMMGFLOPS: Double
    let backwardDataGFLOPS: Double, backwardDataSGEMMGFLOPS: Double
    let backwardWeightGFLOPS: Double, backwardWeightSGEMMGFLOPS: Double
    var forwardRatio: Double { forwardGFLOPS / forwardSGEMMGFLOPS }
    var backwardDataRatio: Double { backwardDataGFLOPS / backwardDataSGEMMGFLOPS }
    var backwardWeightRatio: Double { backwardWeightGFLOPS / backwardWeightSGEMMGFLOPS }

    enum CodingKeys: String, CodingKey {
        case model, layer, batch, gemm, forwardGFLOPS, forwardSGEMMGFLOPS, backwardDataGFLOPS, backwardDataSGEMMGFLOPS
        case backwardWeightGFLOPS, backwardWeightSGEMMGFLOPS
    }
}

enum ConvBenchmark {
    /// The distinct convolution geometries of a model, in order of first appearance, with one layer name each.
    static func distinctConvolutions(_ model: Model) -> [(String, ConvGeometry)] {
        var seen = Set<ConvGeometry>()
        return model.nodes.compactMap { node in
            guard let op = node.op as? Conv2dOp, seen.insert(op.geometry).inserted else { return nil }
            return (node.name, op.geometry)
        }
    }

    static func measure(model: String, layer: String, _ g: ConvGeometry, batch: Int, minimumTime: Double) -> ConvResult {
        let chunks = Parallel.chunkCount(batch)
        let x = Buffer(batch * g.inChannels * g.inputPlane), w = Buffer(g.weightCount)
        let y = Buffer(batch * g.outChannels * g.outputPlane), dy = Buffer(batch * g.outChannels * g.outputPlane)
        let dx = Buffer(x.count), dw = Buffer(w.count * chunks)
        let ws = Buffer(Conv2D.workspaceCount(g, batch: batch))
        let cols = Buffer(g.columnCount * chunks)  // a ready patch matrix per chunk for the GEMM-only runs
        let flops = g.flopsPerSample * Double(batch)
        let (plane, patch, og) = (g.outputPlane, g.groupPatchSize, g.groupOutChannels)
        func rate(_ body: () -> Void) -> Double {
            flops / Harness.median(repetitions: 5, minimumTime: minimumTime, body) / 1e9
        }
        /// The convolution's GEMM calls alone: `call(sample, group, chunk's patch matrix, chunk)`.
        func gemmOnly(_ call: @escaping (Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) -> Double {
            rate {
                Parallel.forEachChunk(of: batch) { samples, chunk in
                    for n in samples { for k in 0..<g.groups { call(n, k, cols.pointer + chunk * g.columnCount + k * patch * plane, chunk) } }
                }
            }
        }

        let forward = rate {
            Conv2D.forward(g, batch: batch, input: x.pointer, weight: w.pointer, bias: nil, output: y.pointer, workspace: ws.pointer)
        }
        let forwardGEMM = gemmOnly { n, k, columns, _ in
            BLAS.sgemm(
                .none, .none, m: og, n: plane, k: patch, a: w.pointer + k * og * patch, lda: patch,
                b: columns, ldb: plane, c: y.pointer + (n * g.groups + k) * og * plane, ldc: plane)
        }
        let data = rate {
            Conv2D.backwardData(g, batch: batch, outputGrad: dy.pointer, weight: w.pointer, inputGrad: dx.pointer, workspace: ws.pointer)
        }
        let dataGEMM = gemmOnly { n, k, columns, _ in
            BLAS.sgemm(
                .transposed, .none, m: patch, n: plane, k: og, a: w.pointer + k * og * patch, lda: patch,
                b: dy.pointer + (n * g.groups + k) * og * plane, ldb: plane, c: columns, ldc: plane)
        }
        let weight = rate {
            Conv2D.backwardWeight(
                g, batch: batch, input: x.pointer, outputGrad: dy.pointer, weightGrad: dw.pointer, biasGrad: nil, workspace: ws.pointer)
        }
        let weightGEMM = gemmOnly { n, k, columns, chunk in
            BLAS.sgemm(
                .none, .transposed, m: og, n: patch, k: plane, a: dy.pointer + (n * g.groups + k) * og * plane, lda: plane,
                b: columns, ldb: plane, beta: 1, c: dw.pointer + chunk * g.weightCount + k * og * patch, ldc: patch)
        }
        return ConvResult(
            model: model, layer: "\(layer): \(g)", batch: batch,
            gemm: "\(batch * g.groups) x (\(og)x\(plane)x\(patch))",
            forwardGFLOPS: forward, forwardSGEMMGFLOPS: forwardGEMM,
            backwardDataGFLOPS: data, backwardDataSGEMMGFLOPS: dataGEMM,
            backwardWeightGFLOPS: weight, backwardWeightSGEMMGFLOPS: weightGEMM)
    }
}

import DSGKernels

/// The threading choice behind ``Parallel``, measured: ResNet-20's most common GEMM (16x784x144, once per
/// sample of a batch of 64) run by OpenBLAS with one thread, by OpenBLAS with all cores, and split over the
/// cores by us with single-threaded OpenBLAS. Runs last: after OpenBLAS has used its own threads they keep
/// spinning for a while and would slow whatever is measured next.
struct ThreadingResult: Codable {
    let gemm: String
    let openBLAS1ThreadGFLOPS: Double
    let openBLASAllThreadsGFLOPS: Double
    let batchSplitGFLOPS: Double
}

enum ThreadingBenchmark {
    static func measure(minimumTime: Double) -> ThreadingResult {
        let (m, n, k, batch) = (16, 784, 144, 64)
        let a = Buffer(m * k), b = Buffer(k * n * Parallel.threadCount), c = Buffer(m * n * batch)
        let flops = 2 * Double(m * n * k * batch)
        func gemm(_ sample: Int, _ chunk: Int) {
            BLAS.sgemm(
                .none, .none, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer + chunk * k * n, ldb: n,
                c: c.pointer + sample * m * n, ldc: n)
        }
        func rate(_ body: () -> Void) -> Double {
            flops / Harness.median(repetitions: 5, minimumTime: minimumTime, body) / 1e9
        }
        let split = rate { Parallel.forEachChunk(of: batch) { samples, chunk in for s in samples { gemm(s, chunk) } } }
        BLAS.threadCount = 1
        let single = rate { for s in 0..<batch { gemm(s, 0) } }
        BLAS.threadCount = Parallel.threadCount
        let all = rate { for s in 0..<batch { gemm(s, 0) } }
        BLAS.threadCount = 1
        return ThreadingResult(
            gemm: "\(batch) x (\(m)x\(n)x\(k))", openBLAS1ThreadGFLOPS: single, openBLASAllThreadsGFLOPS: all,
            batchSplitGFLOPS: split)
    }
}

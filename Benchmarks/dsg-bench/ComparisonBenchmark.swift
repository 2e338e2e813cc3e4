import DSG
import DSGKernels
import Foundation

/// One line of the comparison with PyTorch: our figure, PyTorch's from the reference file, and their ratio in
/// the direction the target is stated (time: ours / PyTorch's; throughput: PyTorch's / ours, so under 1 is a
/// win in both).
struct ComparisonLine: Codable {
    let workload: String
    let unit: String
    let ours: Double
    let pytorch: Double?
    let ratio: Double?
}

/// The workloads of Benchmarks/pytorch/reference_timings.py, run on our side with the same shapes, loss and
/// batch sizes: a `dsg` preset iteration on the embedded ResNet-20 (batch 64) and on ResNet-18 and MobileNetV2 at
/// 3x224x224 (batch 8, initial weights), and forward-only throughput of the embedded ResNet-20 on 10,000
/// Gaussian images at batches 100 and 256.
enum ComparisonBenchmark {
    /// The JSON object that Benchmarks/pytorch/reference_timings.py wrote.
    static func readReference(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.propertyListReadCorrupt)
        }
        return object
    }

    /// The workload names, as in the reference file; `only` selects one of them.
    static let names = [
        "resnet20DSGIteration", "resnet18DSGIteration", "mobileNetV2DSGIteration", "efficientNetLite0DSGIteration",
        "resnet20Inference",
        "resnet20ConvolutionRates",
    ]

    /// EfficientNet-Lite0 comes from the ONNX fixture `.ci/large-fixtures.sh` exports (run from the package root).
    static let efficientNetPath = ".build/large-fixtures/efficientnet-lite0.onnx"

    static func measure(reference: [String: Any]?, quick: Bool, only: String? = nil) throws -> [ComparisonLine] {
        let workloads = reference?["workloads"] as? [String: Any] ?? [:]
        func theirs(_ name: String, _ key: String) -> Double? {
            (workloads[name] as? [String: Any])?[key] as? Double
        }
        let (small, large) = quick ? (5, 3) : (30, 10)
        let embedded = try DSG.defaultModel()
        var lines: [ComparisonLine] = []
        for (name, model, batch, iterations) in [
            ("resnet20DSGIteration", { embedded }, 64, small),
            ("resnet18DSGIteration", { try ResNet.resnet18() }, 8, large),
            ("mobileNetV2DSGIteration", { try MobileNetV2.build() }, 8, large),
            (
                "efficientNetLite0DSGIteration",
                { try Model.load(contentsOf: URL(fileURLWithPath: efficientNetPath)) }, 8, large
            ),
        ] as [(String, () throws -> Model, Int, Int)] where only == nil || only == name {
            if name == "efficientNetLite0DSGIteration" && !FileManager.default.fileExists(atPath: efficientNetPath) {
                print("\(name): skipped, no \(efficientNetPath) (bash .ci/large-fixtures.sh makes it)")
                continue
            }
            let model = try model()
            let ours = try dsgIterationMilliseconds(model, batch: batch, iterations: iterations)
            let pytorch = theirs(name, "milliseconds")
            lines.append(
                ComparisonLine(
                    workload: "\(name) (batch \(batch))", unit: "ms", ours: ours, pytorch: pytorch,
                    ratio: pytorch.map { ours / $0 }))
        }
        let rates = (workloads["resnet20Inference"] as? [String: Any])?["imagesPerSecond"] as? [String: Double] ?? [:]
        for batch in [100, 256] where only == nil || only == "resnet20Inference" {
            let ours = try inferenceImagesPerSecond(embedded, batch: batch)
            // The target is against PyTorch's better layout at this batch.
            let pytorch = [rates["nchwBatch\(batch)"], rates["nhwcBatch\(batch)"]].compactMap { $0 }.max()
            lines.append(
                ComparisonLine(
                    workload: "resnet20Inference (batch \(batch), PyTorch's faster layout)", unit: "images/s",
                    ours: ours, pytorch: pytorch, ratio: pytorch.map { $0 / ours }))
        }
        let convolutionRates = (workloads["resnet20ConvolutionRates"] as? [String: Any])?["gflops"] as? [String: Double]
        if only == nil || only == "resnet20ConvolutionRates" {
            lines += convolutionRateLines(convolutionRates ?? [:], quick: quick)
        }
        return lines
    }

    /// Forward GFLOP/s of a 3x3 stride-1 convolution at each of ResNet-20's three shapes (batch 100, ours with
    /// our fast paths, PyTorch's in its faster layout), then the rate of a 2048x2048 SGEMM on all cores: OpenBLAS's
    /// beside PyTorch's matrix product. The ratio is PyTorch's rate over ours (under 1 is a win).
    static func convolutionRateLines(_ theirs: [String: Double], quick: Bool) -> [ComparisonLine] {
        let batch = 100, minimumTime = quick ? 0.05 : 0.5
        var lines: [ComparisonLine] = []
        for (channels, size) in [(16, 28), (32, 14), (64, 7)] {
            let g = try! ConvGeometry(
                inChannels: channels, outChannels: channels, kernel: (3, 3), padding: (1, 1), input: (size, size))
            let x = Buffer(batch * g.inChannels * g.inputPlane), w = Buffer(g.weightCount)
            let y = Buffer(batch * g.outChannels * g.outputPlane), ws = Buffer(Conv2D.workspaceCount(g, batch: batch))
            let seconds = Harness.median(repetitions: 5, minimumTime: minimumTime) {
                Conv2D.forward(
                    g, batch: batch, input: x.pointer, weight: w.pointer, bias: nil, output: y.pointer,
                    workspace: ws.pointer)
            }
            let ours = g.flopsPerSample * Double(batch) / seconds / 1e9
            let pytorch = [theirs["conv\(channels)x\(size)NCHW"], theirs["conv\(channels)x\(size)NHWC"]]
                .compactMap { $0 }.max()
            lines.append(
                ComparisonLine(
                    workload: "conv 3x3, \(channels) ch, \(size)x\(size), batch \(batch) (PyTorch's faster layout)",
                    unit: "GFLOP/s", ours: ours, pytorch: pytorch, ratio: pytorch.map { $0 / ours }))
        }
        // OpenBLAS threads itself here, as PyTorch's matrix product does; its threads keep spinning for a while
        // after, so this runs last.
        let n = 2048
        let a = Buffer(n * n), c = Buffer(n * n)
        BLAS.threadCount = Parallel.threadCount
        let seconds = Harness.median(repetitions: 5, minimumTime: minimumTime) {
            BLAS.sgemm(.none, .none, m: n, n: n, k: n, a: a.pointer, lda: n, b: a.pointer, ldb: n, c: c.pointer, ldc: n)
        }
        BLAS.threadCount = 1
        let ours = 2 * Double(n * n * n) / seconds / 1e9, pytorch = theirs["matmul2048"]
        lines.append(
            ComparisonLine(
                workload: "SGEMM 2048x2048x2048, all cores (OpenBLAS; PyTorch's matmul)", unit: "GFLOP/s",
                ours: ours, pytorch: pytorch, ratio: pytorch.map { $0 / ours }))
        return lines
    }

    /// The median time of one iteration of the `dsg` preset, from the generation's per-iteration progress
    /// calls, after `warmup` iterations (set-up and margins come before the first call and are left out).
    static func dsgIterationMilliseconds(_ model: Model, batch: Int, iterations: Int, warmup: Int = 3) throws
        -> Double
    {
        var configuration = GenerationConfiguration(preset: .dsg)
        (configuration.count, configuration.batchSize) = (batch, batch)
        configuration.iterations = warmup + iterations
        let clock = ContinuousClock()
        var ends: [ContinuousClock.Instant] = []
        _ = try DSG.generateSamples(from: model, configuration: configuration) { _, _ in ends.append(clock.now) }
        let times = zip(ends.dropFirst(warmup - 1), ends.dropFirst(warmup)).map { Harness.seconds($1 - $0) }
        return 1000 * times.sorted()[times.count / 2]
    }

    /// Images per second of forward passes over 10,000 Gaussian 1x28x28 images, the median of three passes
    /// after one warm-up pass; executors that read the outputs only, as evaluation's.
    static func inferenceImagesPerSecond(_ model: Model, batch: Int, images: Int = 10_000) throws -> Double {
        var random = SeededRandom(seed: 1)
        let data = random.normalTensor([images, 1, 28, 28])
        let inference = try BatchedInference(model: model, batchSize: batch, outputsOnly: true)
        let seconds = try Harness.median(warmup: 1, repetitions: 3) {
            try inference.forEachBatch(of: data) { _, _ in }
        }
        return Double(images) / seconds
    }
}

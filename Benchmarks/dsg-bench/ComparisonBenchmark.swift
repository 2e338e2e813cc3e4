import DSG
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
    /// after one warm-up pass.
    static func inferenceImagesPerSecond(_ model: Model, batch: Int, images: Int = 10_000) throws -> Double {
        var random = SeededRandom(seed: 1)
        let data = random.normalTensor([images, 1, 28, 28])
        let inference = try BatchedInference(model: model, batchSize: batch)
        let seconds = try Harness.median(warmup: 1, repetitions: 3) {
            try inference.forEachBatch(of: data) { _, _ in }
        }
        return Double(images) / seconds
    }
}

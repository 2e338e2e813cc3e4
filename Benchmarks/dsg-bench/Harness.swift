import DSG
import DSGKernels
import Foundation

/// Timing helpers: warm-up, repetitions, medians with `ContinuousClock`.
enum Harness {
    /// Median seconds of `body` over `repetitions` runs after `warmup` runs; with `minimumTime`, the runs
    /// continue until that much time has passed.
    static func median(warmup: Int = 2, repetitions: Int, minimumTime: Double = 0, _ body: () throws -> Void) rethrows
        -> Double
    {
        for _ in 0..<warmup { try body() }
        let clock = ContinuousClock()
        var times: [Double] = []
        let start = clock.now
        while times.count < repetitions || seconds(clock.now - start) < minimumTime {
            let t0 = clock.now
            try body()
            times.append(seconds(clock.now - t0))
            if times.count >= 10 * repetitions { break }
        }
        times.sort()
        return times[times.count / 2]
    }

    /// Median seconds of `a` and of `b`, timed alternately (a, b, a, b, ...) so that drifts in the machine's
    /// speed touch both alike; at least `repetitions` pairs and `minimumTime` seconds after one warm-up pair.
    static func pairedMedians(repetitions: Int, minimumTime: Double, _ a: () -> Void, _ b: () -> Void) -> (
        Double, Double
    ) {
        a()
        b()
        let clock = ContinuousClock()
        var ta: [Double] = [], tb: [Double] = []
        let start = clock.now
        while ta.count < repetitions || (seconds(clock.now - start) < minimumTime && ta.count < 1000) {
            let t0 = clock.now
            a()
            let t1 = clock.now
            b()
            let t2 = clock.now
            ta.append(seconds(t1 - t0))
            tb.append(seconds(t2 - t1))
        }
        return (ta.sorted()[ta.count / 2], tb.sorted()[tb.count / 2])
    }

    static func seconds(_ d: Duration) -> Double { d.inSeconds }

    /// A ResNet-20 (1x28x28) whose BatchNorm running statistics come from a few training-mode passes on
    /// Gaussian images, so the targets of DSG's losses are not all 0 and 1.
    static func resnet20WithStatistics() throws -> Model {
        let model = try ResNet.resnet20()
        let warm = try GraphExecutor(model: model, batchSize: 64)
        var g = SeededRandom(seed: 3)
        for _ in 0..<3 { try warm.forward([g.normalTensor([64, 1, 28, 28])], training: true) }
        return model
    }

    /// The machine, for the header: CPU model, cores, OpenBLAS build, and the kernels' thread count.
    static func machine() -> [String: String] {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let formatter = ISO8601DateFormatter()
        return [
            "date": formatter.string(from: Date()),
            "cpu": model,
            "cores": String(ProcessInfo.processInfo.activeProcessorCount),
            "openblas": BLAS.configuration,
            "kernelThreads": String(Parallel.threadCount),
        ]
    }
}

/// A buffer of random floats that lives for the whole benchmark.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int, seed: UInt64 = 1) {
        self.count = max(count, 1)
        pointer = .allocate(capacity: self.count)
        var s = seed
        for i in 0..<self.count {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            pointer[i] = Float(Int64(bitPattern: s >> 11) % 2001) / 1000 - 1
        }
    }

    deinit { pointer.deallocate() }
}

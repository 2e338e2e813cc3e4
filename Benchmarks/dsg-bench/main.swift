import DSGCore
import DSGKernels
import Foundation

/// dsg-bench: convolution kernels against same-shape OpenBLAS SGEMM, and one ResNet-20 training step.
///
///     swift run -c release dsg-bench [--json] [--quick] [--reference torch-timings.json [--only WORKLOAD]]
///
/// `--json` prints one JSON document (schema in Docs/PERFORMANCE.md) instead of tables; `--quick` measures
/// each case for less time (for smoke tests; numbers are noisier). `--reference FILE` runs only the workloads
/// that Benchmarks/pytorch/reference_timings.py timed into FILE, and prints ours next to PyTorch's with the ratios;
/// `--only` runs one of them (for a profiler, or `/usr/bin/time -v`'s peak memory).
var flags = Set<String>(), referencePath: String?, onlyWorkload: String?
var remaining = CommandLine.arguments.dropFirst()[...]
while let argument = remaining.popFirst() {
    if argument == "--reference", let path = remaining.popFirst() {
        referencePath = path
    } else if argument == "--only", let name = remaining.popFirst() {
        onlyWorkload = name
    } else {
        flags.insert(argument)
    }
}
let unknown = flags.subtracting(["--json", "--quick", "--help", "-h"])
let badWorkload = onlyWorkload.map { !ComparisonBenchmark.names.contains($0) || referencePath == nil } ?? false
if !unknown.isEmpty || badWorkload || flags.contains("--help") || flags.contains("-h") {
    print("usage: dsg-bench [--json] [--quick] [--reference torch-timings.json [--only WORKLOAD]]")
    print("workloads: \(ComparisonBenchmark.names.joined(separator: ", "))")
    exit(unknown.isEmpty && !badWorkload ? 0 : 2)
}
let json = flags.contains("--json"), quick = flags.contains("--quick")
let minimumTime = quick ? 0.05 : 0.5

struct WholeModelResult: Codable {
    let model: String
    let convolutions: Int
    let forwardGFLOPS: Double
    let forwardSGEMMGFLOPS: Double
}

struct ComparisonReport: Codable {
    let machine: [String: String]
    let comparison: [ComparisonLine]
}

struct Report: Codable {
    let machine: [String: String]
    let convolutions: [ConvResult]
    let wholeModelForward: [WholeModelResult]
    let resnet20Step: StepResult
    let dsgIteration: DSGIterationResult
    let qatIteration: QATIterationResult
    let reconstructionIteration: ReconstructionIterationResult
    let onnx: ONNXResult
    let threading: ThreadingResult
}

func log(_ line: String) { if !json { print(line) } }

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

let machine = Harness.machine()
log("dsg-bench  \(machine["date"]!)")
log(
    "cpu: \(machine["cpu"]!), \(machine["cores"]!) cores; "
        + "kernels split the batch over \(machine["kernelThreads"]!) threads, OpenBLAS runs 1 thread per call"
)
log("openblas: \(machine["openblas"]!)")

if let referencePath {
    let reference: [String: Any]
    do {
        reference = try ComparisonBenchmark.readReference(referencePath)
    } catch {
        print("dsg-bench: cannot read the PyTorch reference \(referencePath): \(error.localizedDescription)")
        exit(1)
    }
    let theirs = reference["machine"] as? [String: Any] ?? [:]
    log(
        "PyTorch reference: \(referencePath), torch \(theirs["torch"] ?? "?"), \(theirs["threads"] ?? "?") threads, "
            + "measured \(theirs["date"] ?? "?")\n")
    let lines = try ComparisonBenchmark.measure(reference: reference, quick: quick, only: onlyWorkload)
    log("workload".padding(toLength: 62, withPad: " ", startingAt: 0) + "      ours   PyTorch   ratio (target <= 0.8)")
    for line in lines {
        log(
            line.workload.padding(toLength: 62, withPad: " ", startingAt: 0)
                + String(
                    format: " %9.1f %9.1f %7.2f  %@", line.ours, line.pytorch ?? .nan, line.ratio ?? .nan, line.unit))
    }
    if json { try printJSON(ComparisonReport(machine: machine, comparison: lines)) }
    exit(0)
}

log("GFLOP/s of our convolution vs. the same GEMM calls in OpenBLAS alone (median of repeated runs)\n")

var results: [ConvResult] = []
var wholeModel: [WholeModelResult] = []
for (name, model, batch) in [
    ("ResNet-20 1x28x28", try ResNet.resnet20(), 64), ("ResNet-18 3x224x224", try ResNet.resnet18(), 8),
] {
    log("\(name), batch \(batch)")
    log(
        "  layer".padding(toLength: 52, withPad: " ", startingAt: 0)
            + "   forward (sgemm, ratio)    bwd-data (sgemm, ratio)   bwd-weight (sgemm, ratio)")
    var modelResults: [ConvResult] = [], flops: [Double] = []
    for (layer, g, count) in ConvBenchmark.distinctConvolutions(model) {
        let r = ConvBenchmark.measure(
            model: name, layer: layer, g, occurrences: count, batch: batch, minimumTime: minimumTime)
        modelResults.append(r)
        flops.append(g.flopsPerSample * Double(batch))
        func cell(_ a: Double, _ b: Double) -> String {
            String(format: "%6.1f (%5.1f, %3.0f%%)", a, b, 100 * a / b)
        }
        log(
            "  " + r.layer.padding(toLength: 50, withPad: " ", startingAt: 0)
                + "  \(cell(r.forwardGFLOPS, r.forwardSGEMMGFLOPS))"
                + "  \(cell(r.backwardDataGFLOPS, r.backwardDataSGEMMGFLOPS))"
                + "  \(cell(r.backwardWeightGFLOPS, r.backwardWeightSGEMMGFLOPS))"
        )
    }
    let whole = ConvBenchmark.wholeModelForward(modelResults, flops: flops)
    log(
        String(
            format: "  all %d convolutions, forward: %.1f GFLOP/s vs. SGEMM %.1f GFLOP/s = %.0f%%",
            modelResults.reduce(0) { $0 + $1.occurrences }, whole.ours, whole.sgemm, 100 * whole.ours / whole.sgemm))
    wholeModel.append(
        WholeModelResult(
            model: name, convolutions: modelResults.reduce(0) { $0 + $1.occurrences }, forwardGFLOPS: whole.ours,
            forwardSGEMMGFLOPS: whole.sgemm))
    results += modelResults
    log("")
}

let step = try StepBenchmark.resnet20(batch: 64, minimumTime: quick ? 0.5 : 3)
log(
    String(
        format: "ResNet-20 training step (batch 64, forward + backward + SGD): %.1f ms, %.0f images/s",
        step.milliseconds, step.imagesPerSecond))
log(
    String(
        format:
            "  forward %.1f ms, backward %.1f ms, optimizer %.1f ms; "
            + "heap allocations per step: %d (inside OpenBLAS sgemm: %d)",
        step.forwardMilliseconds, step.backwardMilliseconds, step.optimizerMilliseconds, step.allocationsPerStep,
        step.allocationsInsideSGEMM))

let dsg = try DSGBenchmark.measure(iterations: quick ? 5 : 30)
log(
    String(
        format:
            "DSG iteration (ResNet-20, batch 64, preset dsg): %.1f ms = forward %.1f + BatchNorm losses %.1f "
            + "+ backward %.1f + image terms %.1f + Adam %.1f; %.0f images/min at 500 iterations; "
            + "heap allocations per iteration: %d",
        dsg.milliseconds, dsg.forwardMilliseconds, dsg.batchNormLossesMilliseconds, dsg.backwardMilliseconds,
        dsg.imageTermsMilliseconds,
        dsg.optimizerMilliseconds, dsg.imagesPerMinute, dsg.allocationsPerIteration))

let qat = try QATBenchmark.measure(iterations: quick ? 3 : 20)
log(
    String(
        format:
            "QAT iteration (ResNet-20 teacher, batch 64, DSG generator loss, W4A4): %.1f ms = generator forward "
            + "%.1f + teacher and losses %.1f + generator backward and Adam %.1f + student %.1f; "
            + "heap allocations per iteration: %d",
        qat.milliseconds, qat.generatorForwardMilliseconds, qat.teacherMilliseconds, qat.generatorBackwardMilliseconds,
        qat.studentMilliseconds,
        qat.allocationsPerIteration))

let reconstruction = try ReconstructionBenchmark.measure(iterations: quick ? 20 : 200)
log(
    String(
        format:
            "Reconstruction iteration (QDrop, ResNet-20 %@, batch %d, W4A4, %d calibration images): %.1f ms; "
            + "heap allocations per iteration: %d; whole reconstruction (11 blocks x %d steps): %.1f s",
        reconstruction.block, reconstruction.batch, reconstruction.calibrationImages, reconstruction.milliseconds,
        reconstruction.allocationsPerIteration, reconstruction.iterationsPerBlock,
        reconstruction.wholeReconstructionSeconds))

let onnx = try ONNXBenchmark.measure(loads: quick ? 3 : 9, iterations: quick ? 5 : 20, rounds: quick ? 1 : 3)
log(
    String(
        format:
            "ONNX import (the embedded ResNet-20 exported from PyTorch, %.1f MB): loaded in %.0f ms; "
            + "DSG iteration on the import %.1f ms, on the same network built in Swift %.1f ms (ratio %.2f)",
        Double(onnx.fileBytes) / 1e6, onnx.loadMilliseconds, onnx.importedIterationMilliseconds,
        onnx.builtIterationMilliseconds, onnx.importedIterationMilliseconds / onnx.builtIterationMilliseconds))

let threading = ThreadingBenchmark.measure(minimumTime: minimumTime)
log(
    String(
        format:
            "\nThreading, %@ GEMM: OpenBLAS 1 thread %.1f GFLOP/s, OpenBLAS %d threads %.1f, "
            + "our batch split over %d threads %.1f",
        threading.gemm, threading.openBLAS1ThreadGFLOPS, Parallel.threadCount, threading.openBLASAllThreadsGFLOPS,
        Parallel.threadCount, threading.batchSplitGFLOPS))

if json {
    try printJSON(
        Report(
            machine: machine, convolutions: results, wholeModelForward: wholeModel, resnet20Step: step,
            dsgIteration: dsg, qatIteration: qat, reconstructionIteration: reconstruction, onnx: onnx,
            threading: threading))
}

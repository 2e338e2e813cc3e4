"""Times two ONNX files in onnxruntime in the same sitting, alternating, so that the machine's drift falls on
both alike: the Float32 export and a quantized QDQ export of one model, at batch 1 and 64.

    python onnxruntime_latency.py FP32.onnx QUANTIZED.onnx [--shape 1,28,28] [--rounds 7]

Each round runs each model `runs` times after a warm-up (2 threads, every graph optimization on) and keeps the
median; the report is the median over rounds and the ratio quantized / Float32 (below 1: the quantized model is
faster). Speed is reported, not asserted: CI prints it, Docs/ONNX.md records a run.
"""
import argparse

import numpy
import onnxruntime
import time


def session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def median_run(s, feed, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        s.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(numpy.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("quantized")
    parser.add_argument("--shape", default="1,28,28")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    shape = [int(d) for d in args.shape.split(",")]
    models = {"fp32": session(args.fp32), "quantized": session(args.quantized)}
    print(f"onnxruntime {onnxruntime.__version__}: {args.fp32} vs {args.quantized}")
    for batch, runs in ((1, 200), (64, 20)):
        x = numpy.random.default_rng(0).standard_normal([batch] + shape).astype(numpy.float32)
        medians = {k: [] for k in models}
        for s in models.values():
            for _ in range(5):
                s.run(None, {s.get_inputs()[0].name: x})
        for _ in range(args.rounds):
            for k, s in models.items():
                medians[k].append(median_run(s, {s.get_inputs()[0].name: x}, runs))
        fp32, quantized = (1000 * float(numpy.median(medians[k])) for k in ("fp32", "quantized"))
        print(f"  batch {batch}: Float32 {fp32:.3f} ms, quantized {quantized:.3f} ms, ratio {quantized / fp32:.2f} "
              f"(median of {args.rounds} alternating rounds of {runs} runs)")


if __name__ == "__main__":
    main()

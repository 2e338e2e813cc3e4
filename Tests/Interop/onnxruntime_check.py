"""Runs an ONNX file written by swift-dsg in onnxruntime (the runtime users deploy with) and compares its
logits with the ones swift-dsg computed on the same images: a Float32 model (`dsg export`, `dsg evaluate
--save-logits`) or a quantized one in QDQ form (`dsg quantize --output q.onnx --save-logits`).

    python onnxruntime_check.py MODEL.onnx EVALUATION.safetensors [--max-relative 1e-5] [--max-top1-gap 0.05]
        [--require-ops QLinearConv,QLinearAdd] [--latency] [--reference FP32.onnx] [--json RESULT.json]

Python and onnxruntime are tools here: `.ci/onnxruntime.sh` installs them in a throwaway virtual environment;
the Swift package never needs them. Prints the largest absolute and relative logit difference (relative to
max(|ours|, 1), as the Swift tests measure), the argmax agreement and both top-1 accuracies, and exits 1 when
the relative difference exceeds --max-relative or the top-1 accuracies differ by more than --max-top1-gap
percentage points (each check only when given). --require-ops also fails unless onnxruntime's optimized graph
(its `optimized_model_filepath`) contains those operators, the proof that it runs integer kernels; --latency
times the model at batch 1 and 64 (median of repeated runs, 2 threads, every graph optimization on).
--reference also runs a Float32 model on the same images in onnxruntime and reports, for both, top-1 and top-5,
and for MODEL its top-1 agreement with the reference and the mean KL divergence from the reference's softmax
(nats); --json writes every number to a file.
"""
import argparse
import collections
import json
import os
import struct
import sys
import tempfile
import time

import numpy
import onnxruntime


def read_safetensors(path):
    """The F32 tensors of a safetensors file, as numpy arrays by name."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", (name, entry["dtype"])
        begin, end = entry["data_offsets"]
        out[name] = numpy.frombuffer(body[begin:end], dtype="<f4").reshape(entry["shape"])
    return out


def top5(logits, labels):
    """The fraction of rows whose label is among the five largest logits."""
    best = numpy.argsort(-logits, axis=1, kind="stable")[:, :5]
    return float((best == labels[:, None]).any(1).mean())


def mean_kl(reference, logits):
    """Mean over rows of KL(softmax(reference) || softmax(logits)), in nats, computed in float64."""
    def log_softmax(x):
        x = x.astype(numpy.float64)
        x = x - x.max(1, keepdims=True)
        return x - numpy.log(numpy.exp(x).sum(1, keepdims=True))
    p, q = log_softmax(reference), log_softmax(logits)
    return float((numpy.exp(p) * (p - q)).sum(1).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("evaluation")
    parser.add_argument("--max-relative", type=float)
    parser.add_argument("--max-top1-gap", type=float)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--require-ops", default="")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--reference")
    parser.add_argument("--json")
    args = parser.parse_args()

    tensors = read_safetensors(args.evaluation)
    images, labels, ours = tensors["images"], tensors["labels"].astype(numpy.int64), tensors["logits"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    optimized = os.path.join(tempfile.mkdtemp(), "optimized.onnx")
    # Basic and extended optimizations hold the QDQ fusions; the layout ones (NCHWc) are for this CPU only.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = optimized
    session = onnxruntime.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def logits_of(session):
        return numpy.concatenate(
            [session.run(None, {name: images[i:i + args.batch]})[0] for i in range(0, len(images), args.batch)])

    theirs = logits_of(session)

    difference = numpy.abs(theirs.astype(numpy.float64) - ours)
    relative = float((difference / numpy.maximum(numpy.abs(ours), 1.0)).max())
    agreement = float((theirs.argmax(1) == ours.argmax(1)).mean())
    top1_ours = float((ours.argmax(1) == labels).mean())
    top1_theirs = float((theirs.argmax(1) == labels).mean())
    print(f"onnxruntime {onnxruntime.__version__} on {args.model}: {len(images)} images")
    print(f"  logits: max |difference| {difference.max():.3g}, max relative {relative:.3g}")
    print(f"  argmax agreement {100 * agreement:.2f}%; top-1 swift-dsg {100 * top1_ours:.2f}%, "
          f"onnxruntime {100 * top1_theirs:.2f}%")
    import onnx  # only to read the optimized graph back
    operators = collections.Counter(node.op_type for node in onnx.load(optimized).graph.node)
    print("  optimized graph: " + ", ".join(f"{op} {n}" for op, n in sorted(operators.items())))
    result = {"onnxruntime": onnxruntime.__version__, "model": args.model, "images": len(images),
              "max_abs_difference": float(difference.max()), "max_relative_difference": relative,
              "agreement_with_ours": agreement, "top1_ours": top1_ours, "top1_onnxruntime": top1_theirs,
              "top5_ours": top5(ours, labels), "top5_onnxruntime": top5(theirs, labels),
              "optimized_operators": dict(operators)}
    if args.reference:
        plain = onnxruntime.SessionOptions()
        plain.intra_op_num_threads = 2
        reference = logits_of(onnxruntime.InferenceSession(args.reference, plain, providers=["CPUExecutionProvider"]))
        result.update({"reference": args.reference, "top1_reference": float((reference.argmax(1) == labels).mean()),
                       "top5_reference": top5(reference, labels),
                       "agreement_with_reference": float((theirs.argmax(1) == reference.argmax(1)).mean()),
                       "kl_from_reference": mean_kl(reference, theirs)})
        print(f"  against {args.reference} in onnxruntime: top-1 {100 * result['top1_reference']:.2f}% -> "
              f"{100 * top1_theirs:.2f}%, top-5 {100 * result['top5_reference']:.2f}% -> "
              f"{100 * result['top5_onnxruntime']:.2f}%, top-1 agreement "
              f"{100 * result['agreement_with_reference']:.2f}%, mean KL {result['kl_from_reference']:.4f}")
    if args.latency:
        # Timed with every optimization onnxruntime has, the layout ones for this CPU included.
        fastest = onnxruntime.SessionOptions()
        fastest.intra_op_num_threads = 2
        fastest.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        timed = onnxruntime.InferenceSession(args.model, fastest, providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            x = images[:batch]
            for _ in range(5):
                timed.run(None, {name: x})
            runs = 300 if batch == 1 else 30
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                timed.run(None, {name: x})
                times.append(time.perf_counter() - start)
            print(f"  latency batch {batch}: median {1000 * float(numpy.median(times)):.3f} ms over {runs} runs")
            result[f"latency_batch{batch}_ms"] = 1000 * float(numpy.median(times))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    failed = False
    missing = [op for op in args.require_ops.split(",") if op and operators[op] == 0]
    if missing:
        print(f"  FAILED: the optimized graph has no {', '.join(missing)}", file=sys.stderr)
        failed = True
    if args.max_relative is not None and relative > args.max_relative:
        print(f"  FAILED: the logits differ by {relative:.3g} relative, more than {args.max_relative:g}", file=sys.stderr)
        failed = True
    gap = 100 * abs(top1_ours - top1_theirs)
    if args.max_top1_gap is not None and gap > args.max_top1_gap:
        print(f"  FAILED: top-1 differs by {gap:.2f} points, more than {args.max_top1_gap:g}", file=sys.stderr)
        failed = True
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

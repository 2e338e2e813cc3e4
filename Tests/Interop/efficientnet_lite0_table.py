"""The markdown table of Tests/Interop/efficientnet_lite0_end_to_end.sh, from the JSON files it wrote:

    python efficientnet_lite0_table.py OUTPUT_FOLDER > results.md

Every number comes from onnxruntime_check.py (onnxruntime on foolbox's 20 photos) or from `dsg generate`'s
report; nothing is typed in.
"""
import json
import os
import sys

out = sys.argv[1]


def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def percent(x):
    return f"{100 * x:.0f}%"


fp32 = load("fp32.json")
print("| Calibration | Bits | Weights | top-1 | top-5 | top-1 agreement with FP32 | mean KL from FP32 | "
      "swift-dsg top-1 / agreement with onnxruntime |")
print("|---|---|---|---|---|---|---|---|")
print(f"| - | FP32 | - | {percent(fp32['top1_onnxruntime'])} | {percent(fp32['top5_onnxruntime'])} | - | - | "
      f"{percent(fp32['top1_ours'])} / {percent(fp32['agreement_with_ours'])} |")
names = {"dsg": "DSG", "zeroQ": "ZeroQ", "gaussian": "Gaussian noise"}
for bits in ("w8a8", "w6a6", "w4a8"):
    for weights in ("minMax", "symmetric"):
        for preset in ("dsg", "zeroQ", "gaussian"):
            r = load(f"{bits}-{preset}-{weights}.json")
            print(f"| {names[preset]} | {bits.upper()} | {weights} | {percent(r['top1_onnxruntime'])} | "
                  f"{percent(r['top5_onnxruntime'])} | {percent(r['agreement_with_reference'])} | "
                  f"{r['kl_from_reference']:.3f} | {percent(r['top1_ours'])} / {percent(r['agreement_with_ours'])} |")
r = load("w4a8-dsg-adaround.json")
print(f"| DSG, AdaRound | W4A8 | minMax | {percent(r['top1_onnxruntime'])} | {percent(r['top5_onnxruntime'])} | "
      f"{percent(r['agreement_with_reference'])} | {r['kl_from_reference']:.3f} | "
      f"{percent(r['top1_ours'])} / {percent(r['agreement_with_ours'])} |")
print()
for preset in ("dsg", "zeroQ", "gaussian"):
    report = load(f"samples-{preset}.json")
    c = report["configuration"]
    with open(os.path.join(out, f"generate-{preset}.txt")) as f:
        resources = [line.strip() for line in f if "peak resident" in line]
    print(f"- {names[preset]} samples: {c['count']}, batch {report['batchSize']}, {c['iterations']} iterations, "
          f"{report['seconds']:.0f} s" + (f" ({resources[-1]})" if resources else ""))
# The latency runs use the photos as the batch, so "batch 64" is all 20 of them.
line = f"- onnxruntime {fp32['onnxruntime']} latency, batch 1 / {fp32['images']} (all photos): FP32 " + \
    f"{fp32['latency_batch1_ms']:.1f} / {fp32['latency_batch64_ms']:.0f} ms"
for weights in ("minMax", "symmetric"):
    latency = load(f"w8a8-dsg-{weights}-latency.json")
    line += f"; W8A8 (DSG, {weights} weights) {latency['latency_batch1_ms']:.1f} / {latency['latency_batch64_ms']:.0f} ms"
print(line)
with open(os.path.join(out, "latency.txt")) as f:
    print("- onnxruntime_latency.py, FP32 vs W8A8 (DSG, symmetric weights): "
          + "; ".join(line.strip() for line in f if "batch" in line))

#!/usr/bin/env bash
# Checks swift-dsg's ONNX exports in onnxruntime from PyPI, in a throwaway virtual environment
# (Tests/Interop/onnxruntime_check.py), on the 10k Fashion-MNIST test images:
# - the embedded model exported by `dsg export` gives the logits `dsg evaluate` gives, to 1e-5 relative;
# - W8A8 and W4A4 models quantized on the main job's DSG samples, written in QDQ form by `dsg quantize
#   --output q.onnx`, give the top-1 accuracy `dsg` measures for the same quantized model within 0.05 points;
# - a W3A3 model quantized with BRECQ from the Float32 export (an imported model) does too;
# - the W8A8 model quantized for integer kernels (--integer-kernels) does too, and onnxruntime's optimized graph
#   runs it with QLinearConv and QLinearAdd; its latency next to Float32's is printed (not asserted).
# Needs the release build, Fashion-MNIST and the main job's samples (dsg-demo/, from `dsg demo`).
set -euo pipefail
cd "$(dirname "$0")/.."

work=".build/interop"
samples="dsg-demo/samples-dsg-seed0.safetensors"
mkdir -p "$work"
venv="$(mktemp -d "${TMPDIR:-/tmp}/dsg-onnxruntime.XXXXXX")"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 onnx==1.23.2 numpy
check() { "$venv/bin/python" Tests/Interop/onnxruntime_check.py "$@"; }

swift run -c release dsg export --output "$work/resnet20.onnx"
swift run -c release dsg evaluate --save-logits "$work/resnet20-logits.safetensors"
check "$work/resnet20.onnx" "$work/resnet20-logits.safetensors" --max-relative 1e-5

for bits in 8 4; do
    name="$work/resnet20-w${bits}a${bits}"
    swift run -c release dsg quantize --samples "$samples" --weight-bits "$bits" --activation-bits "$bits" \
        --output "$name.onnx" --save-logits "$name-logits.safetensors"
    check "$name.onnx" "$name-logits.safetensors" --max-top1-gap 0.05
done

# Reconstruction on an imported model: the ONNX export above, quantized at W3A3 with BRECQ (a short schedule).
name="$work/resnet20-w3a3-brecq"
rm -f "$name-checkpoint.safetensors"
swift run -c release dsg quantize --model "$work/resnet20.onnx" --samples "$samples" --weight-bits 3 \
    --activation-bits 3 --reconstruction brecq --reconstruction-iterations 100 \
    --checkpoint "$name-checkpoint.safetensors" --output "$name.onnx" --save-logits "$name-logits.safetensors"
check "$name.onnx" "$name-logits.safetensors" --max-top1-gap 0.05

name="$work/resnet20-w8a8-integer"
swift run -c release dsg quantize --samples "$samples" --weight-bits 8 --activation-bits 8 --integer-kernels \
    --output "$name.onnx" --save-logits "$name-logits.safetensors"
check "$name.onnx" "$name-logits.safetensors" --max-top1-gap 0.05 --require-ops QLinearConv,QLinearAdd
"$venv/bin/python" Tests/Interop/onnxruntime_latency.py "$work/resnet20.onnx" "$name.onnx"

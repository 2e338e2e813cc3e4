#!/usr/bin/env bash
# Checks swift-dsg's ONNX export in onnxruntime from PyPI, in a throwaway virtual environment: the embedded
# model exported with `dsg export` must give the logits `dsg evaluate` gives on the 10k Fashion-MNIST test
# images, to 1e-5 relative (Tests/Interop/onnxruntime_check.py). Needs the release build and Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."

work=".build/interop"
mkdir -p "$work"
venv="$(mktemp -d "${TMPDIR:-/tmp}/dsg-onnxruntime.XXXXXX")"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 numpy

swift run -c release dsg export --output "$work/resnet20.onnx"
swift run -c release dsg evaluate --save-logits "$work/resnet20-logits.safetensors"
"$venv/bin/python" Tests/Interop/onnxruntime_check.py "$work/resnet20.onnx" "$work/resnet20-logits.safetensors"

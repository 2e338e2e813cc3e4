"""Exports the ONNX fixtures of the importer's tests with PyTorch (a tool here; the tests never need Python).

    apt-get install -y python3-torch python3-onnx
    cd Tests/DSGTests/Fixtures/onnx && /usr/bin/python3 export_fixtures.py

Writes, next to this script:
- resnet20-fashion-mnist.onnx: the embedded ResNet-20 (Sources/DSG/Resources/resnet20-fashion-mnist.safetensors)
  loaded into the PyTorch module of Tests/DSGCoreTests/Fixtures/generate_fixtures.py and exported with BatchNorm
  kept (training=PRESERVE, do_constant_folding=False), opset 13, batch size free;
- folded.onnx: a small conv-BN-ReLU network exported the default way, which folds BatchNorm into the convolution
  (the file the importer must refuse with advice);
- resnet20-fashion-mnist.json: PyTorch's logits on a fixed input and the gradient of sum(logits * r) with
  respect to the input, for the import to match.
"""
import json
import os
import struct
import sys

import numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../.."))
sys.path.insert(0, os.path.join(ROOT, "Tests/DSGCoreTests/Fixtures"))
from generate_fixtures import ResNet20, hash_uniform, flat  # noqa: E402


def read_safetensors(path):
    """The tensors of a safetensors file (F32 only), as torch tensors by name."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", name
        begin, end = entry["data_offsets"]
        values = numpy.frombuffer(body[begin:end], dtype="<f4").reshape(entry["shape"])
        out[name] = torch.from_numpy(values.copy())
    return out


def export(model, path, example, **options):
    torch.onnx.export(
        model, example, path, input_names=["image"], output_names=["logits"], opset_version=13,
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **options)


def main():
    torch.manual_seed(20261201)
    model = ResNet20()
    state = read_safetensors(os.path.join(ROOT, "Sources/DSG/Resources/resnet20-fashion-mnist.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    n = 4
    x = torch.tensor([1.5 * hash_uniform(2001, i) for i in range(n * 28 * 28)], dtype=torch.float32).reshape(n, 1, 28, 28)
    r = torch.tensor([hash_uniform(2002, i) for i in range(n * 10)], dtype=torch.float32).reshape(n, 10)
    export(model, os.path.join(HERE, "resnet20-fashion-mnist.onnx"), x[:1],
           training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    xi = x.clone().requires_grad_(True)
    logits = model(xi)
    (logits * r).sum().backward()
    with open(os.path.join(HERE, "resnet20-fashion-mnist.json"), "w") as f:
        json.dump({"provenance": {"generator": "Tests/DSGTests/Fixtures/onnx/export_fixtures.py",
                                  "command": "/usr/bin/python3 export_fixtures.py", "torch": torch.__version__},
                   "input": {"hash": 2001, "scale": 1.5, "shape": [n, 1, 28, 28]},
                   "weights": {"hash": 2002, "shape": [n, 10]},
                   "logits": flat(logits), "input_grad": flat(xi.grad)}, f)

    small = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    small.eval()
    export(small, os.path.join(HERE, "folded.onnx"), torch.zeros(1, 1, 8, 8))
    print("wrote resnet20-fashion-mnist.onnx, resnet20-fashion-mnist.json and folded.onnx")


if __name__ == "__main__":
    main()

"""Exports the ONNX fixtures of the importer's tests with PyTorch (a tool here; the tests never need Python).

    apt-get install -y python3-torch python3-onnx
    cd Tests/DSGTests/Fixtures/onnx && /usr/bin/python3 export_fixtures.py

Writes, next to this script:
- resnet20-fashion-mnist.onnx: the embedded ResNet-20 (Sources/DSG/Resources/resnet20-fashion-mnist.safetensors)
  loaded into the PyTorch module of Tests/DSGCoreTests/Fixtures/generate_fixtures.py and exported with BatchNorm
  kept (training=PRESERVE, do_constant_folding=False), opset 13, batch size free;
- folded.onnx: a small conv-BN-ReLU network exported the default way, which folds BatchNorm into the convolution
  (the file the importer must refuse with advice);
- squeeze-excite.onnx and .json: a small mobile-style network (HardSwish, a squeeze-excite gate with Sigmoid,
  a scalar product, a spatial mean and PyTorch's `x.view(x.size(0), -1)`), random weights and running
  statistics, BatchNorm kept, with PyTorch's logits and input gradient on a fixed input;
- same-padding.onnx and .json: TF-style "same" padding by F.pad (which the exporter computes in the graph from
  the constant [0, 1, 0, 1]), a clip to [-1, 1], a subtracted constant and a linear layer written as x @ W + b
  (MatMul and Add), random weights, with PyTorch's logits and input gradient;
- resnet20-fashion-mnist.json: PyTorch's logits on a fixed input and the gradient of sum(logits * r) with
  respect to the input, for the import to match.
"""
import json
import os
import struct
import sys

import numpy
import torch
import torch.nn.functional as F

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


def export_with_golden(model, name, x, r, inputs):
    """<name>.onnx with BatchNorm kept, and <name>.json: PyTorch's logits on x and the gradient of
    sum(logits * r) with respect to x, next to `inputs` (how the test rebuilds x and r)."""
    export(model, os.path.join(HERE, name + ".onnx"), x[:1],
           training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    xi = x.clone().requires_grad_(True)
    logits = model(xi)
    (logits * r).sum().backward()
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump({"provenance": {"generator": "Tests/DSGTests/Fixtures/onnx/export_fixtures.py",
                                  "command": "/usr/bin/python3 export_fixtures.py", "torch": torch.__version__},
                   **inputs, "logits": flat(logits), "input_grad": flat(xi.grad)}, f)


class SqueezeExcite(torch.nn.Module):
    """Conv-BN-HardSwish, conv-BN, a squeeze-excite gate (mean, 1x1 convs, Sigmoid), x2, mean, view, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.squeeze = torch.nn.Conv2d(8, 4, 1)
        self.excite = torch.nn.Conv2d(4, 8, 1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        h = F.hardswish(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(h.mean((2, 3), keepdim=True)))))
        h = (h * gate) * 2
        h = h.mean((2, 3), keepdim=True)
        return self.fc(h.view(h.size(0), -1))


class SamePadding(torch.nn.Module):
    """F.pad to TF's "same" size before a stride-2 conv, BN, a [-1, 1] clip, x - 0.5, mean, x @ W + b."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, stride=2, bias=False)
        self.bn = torch.nn.BatchNorm2d(4)
        self.weight = torch.nn.Parameter(torch.randn(4, 3))
        self.bias = torch.nn.Parameter(torch.randn(3))

    def forward(self, x):
        h = torch.clamp(self.bn(self.conv(F.pad(x, (0, 1, 0, 1)))), -1, 1) - 0.5
        return torch.flatten(h.mean((2, 3)), 1) @ self.weight + self.bias


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
    export_with_golden(model, "resnet20-fashion-mnist", x, r,
                       {"input": {"hash": 2001, "scale": 1.5, "shape": [n, 1, 28, 28]},
                        "weights": {"hash": 2002, "shape": [n, 10]}})

    torch.manual_seed(20261202)
    se = SqueezeExcite().eval()
    for bn in (se.bn1, se.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    xs = torch.randn(2, 3, 12, 12)
    rs = torch.randn(2, 5)
    export_with_golden(se, "squeeze-excite", xs, rs, {"input": flat(xs), "weights": flat(rs)})

    small = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    small.eval()
    export(small, os.path.join(HERE, "folded.onnx"), torch.zeros(1, 1, 8, 8))

    torch.manual_seed(20261203)
    same = SamePadding().eval()
    same.bn.running_mean.uniform_(-0.5, 0.5)
    same.bn.running_var.uniform_(0.5, 2.0)
    xp = torch.randn(2, 2, 8, 8)
    rp = torch.randn(2, 3)
    export_with_golden(same, "same-padding", xp, rp, {"input": flat(xp), "weights": flat(rp)})
    print("wrote resnet20-fashion-mnist.onnx/.json, squeeze-excite.onnx/.json, same-padding.onnx/.json and folded.onnx")


if __name__ == "__main__":
    main()

"""The RMS of every ReLU output of an ONNX classifier on calibration sets, relative to real Fashion-MNIST images.

Usage (onnxruntime, onnx and numpy from PyPI, e.g. the venv of .ci/onnxruntime.sh):
    python Tests/Interop/activation_rms.py model.onnx name=samples.safetensors [name=samples.safetensors ...]

Real images are the first 256 training images of Debian's dataset-fashion-mnist, normalised as the embedded model
expects ((x - 0.2860) / 0.3530). For each set it prints the ratio of its ReLU RMS to the real images' at the first,
middle and last ReLU, the mean and minimum over all of them, and the set's pixel standard deviation: how much weaker or stronger a calibration set
drives each layer than real data does (Docs/RESULTS.md, reconstruction at W2A4).
"""
import gzip
import json
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort


def images(path):
    """The one 4-D tensor of a safetensors file (a sample set's images)."""
    data = open(path, "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    for key, entry in header.items():
        if key != "__metadata__" and len(entry["shape"]) == 4:
            start, end = entry["data_offsets"]
            return np.frombuffer(data[8 + size + start:8 + size + end], dtype=np.float32).reshape(entry["shape"])
    raise SystemExit(f"{path}: no 4-D tensor")


model = onnx.load(sys.argv[1])
relus = [node.output[0] for node in model.graph.node if node.op_type == "Relu"]
for name in relus:
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
session = ort.InferenceSession(model.SerializeToString())
raw = gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read()[16:]
real = np.frombuffer(raw, dtype=np.uint8)[:256 * 784].reshape(256, 1, 28, 28).astype(np.float32) / 255
sets = {"real": (real - 0.2860) / 0.3530}
for argument in sys.argv[2:]:
    name, path = argument.split("=", 1)
    sets[name] = images(path)
feed = session.get_inputs()[0].name
rms = {name: np.array([np.sqrt((o ** 2).mean()) for o in session.run(relus, {feed: x})]) for name, x in sets.items()}
print(f"ReLU RMS relative to real images ({len(relus)} ReLUs):")
for name, values in rms.items():
    r = values / rms["real"]
    print(f"{name:10s} first {r[0]:.2f}  middle {r[len(r) // 2]:.2f}  last {r[-1]:.2f}  mean {r.mean():.2f}  "
          f"min {r.min():.2f}  (pixel standard deviation {sets[name].std():.2f})")

"""The RMS of every ReLU output of an ONNX classifier on calibration sets, relative to real Fashion-MNIST images.

Usage (onnxruntime, onnx and numpy from PyPI, e.g. the venv of .ci/onnxruntime.sh):
    python Tests/Interop/activation_rms.py model.onnx name=samples.safetensors [name=samples.safetensors ...]

Real images are the first 256 training images of Debian's dataset-fashion-mnist, normalised as the embedded model
expects ((x - 0.2860) / 0.3530). For each set it prints the ratio of its ReLU RMS to the real images' at the first,
middle and last ReLU, the mean and minimum over all of them, and the set's pixel standard deviation: how much weaker or stronger a calibration set
drives each layer than real data does (Docs/RESULTS.md, reconstruction at W2A4).

Then, for the first convolution's 3x3 input patches (zero padding 1, every channel), what a learned rounding of
that layer is fitted to: the rounding error dW of a linear layer costs tr(dW S dW^T) on a set whose patches have
the second-moment matrix S, so rounding learned on a calibration set weighs each patch direction by its S instead
of the real images' S_real. Printed per set: the share of patch energy off the flat direction (a patch of equal
pixels: what smooth images are made of), and the range of the generalised eigenvalues of S_real against S (scaled
to mean 1): how much more (max) or less (min) a direction matters on real images than on the set. And the
effective rank of each set's samples in pixels and at the first, middle and last ReLU: how many directions the
set spans where a block's rounding is fitted.
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
outputs = {name: session.run(relus, {feed: x}) for name, x in sets.items()}
rms = {name: np.array([np.sqrt((o ** 2).mean()) for o in values]) for name, values in outputs.items()}
print(f"ReLU RMS relative to real images ({len(relus)} ReLUs):")
for name, values in rms.items():
    r = values / rms["real"]
    print(f"{name:10s} first {r[0]:.2f}  middle {r[len(r) // 2]:.2f}  last {r[-1]:.2f}  mean {r.mean():.2f}  "
          f"min {r.min():.2f}  (pixel standard deviation {sets[name].std():.2f})")



def effective_rank(features):
    """exp of the entropy of the eigenvalues of the samples' cosine-similarity matrix (Docs/DSG.md, section 9)."""
    rows = features.reshape(len(features), -1).astype(np.float64)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    values = np.maximum(np.linalg.eigvalsh(rows @ rows.T), 0)
    p = values[values > 0] / values.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


middle = len(relus) // 2
print(f"Effective rank of each set's samples (pixels, then {relus[0]}, {relus[middle]} and {relus[-1]}):")
for name, values in outputs.items():
    ranks = [effective_rank(sets[name])] + [effective_rank(values[k]) for k in (0, middle, -1)]
    print(f"{name:10s} " + "  ".join(f"{r:6.1f}" for r in ranks))


def patch_moments(x):
    """The second-moment matrix of the 3x3 patches (zero padding 1) of images x, [N, C, H, W]."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    patches = np.stack([padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=2)
    patches = patches.transpose(0, 3, 4, 1, 2).reshape(-1, c * 9).astype(np.float64)
    return patches.T @ patches / len(patches)


def patch_report(title, inputs):
    """The patch measures of `inputs` (name -> [N, C, H, W]) against the real images' ones."""
    print(title)
    # Each scaled to trace 1, plus a ridge of 0.1% of the mean eigenvalue: channels a ReLU never opens make these
    # matrices singular, and directions no set uses should not decide the range.
    moments = {name: patch_moments(x) for name, x in inputs.items()}
    moments = {name: m / np.trace(m) + 1e-3 / len(m) * np.eye(len(m)) for name, m in moments.items()}
    flat = np.ones(moments["real"].shape[0]) / np.sqrt(moments["real"].shape[0])
    for name, m in moments.items():
        off_flat = 1 - flat @ m @ flat / np.trace(m)
        # Generalised eigenvalues of (S_real, S): the eigenvalues of S^(-1/2) S_real S^(-1/2).
        values, vectors = np.linalg.eigh(m)
        root = vectors @ np.diag(1 / np.sqrt(values)) @ vectors.T
        ratio = np.linalg.eigvalsh(root @ moments["real"] @ root)
        ratio /= ratio.mean()
        print(f"{name:10s} energy off the flat direction {off_flat:.3f}  real/set weight per direction "
              f"min {ratio.min():.2f} max {ratio.max():.2f}")


patch_report("First convolution's 3x3 input patches (the images):", sets)
# The next convolution's input patches at the first and the middle ReLU, on 64 images of each set.
for k in (0, middle):
    patch_report(f"3x3 patches of {relus[k]}, the next convolution's input (64 images):",
                 {name: values[k][:64] for name, values in outputs.items()})

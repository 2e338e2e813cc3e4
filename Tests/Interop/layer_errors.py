"""Where a quantized model departs from its float model: the relative error of every ReLU or ReLU6 output (ONNX
Relu or Clip) and of the logits.

Usage (onnxruntime, onnx and numpy from PyPI, e.g. the venv of .ci/onnxruntime.sh):
    python Tests/Interop/layer_errors.py float.onnx name=quantized.onnx [name=quantized.onnx ...]

Both models run on 512 real Fashion-MNIST training images (not the test images the tables report), normalised as
the embedded model expects. For each quantized model (QDQ, as `dsg quantize --output q.onnx` writes it) it prints
||q - f||^2 / ||f||^2 at every ReLU and ReLU6 output that both graphs name alike, the errors accumulated through the
quantized model's own earlier layers, as the tables' accuracy sees them (Docs/RESULTS.md, reconstruction at W2A4).
"""
import gzip
import sys

import numpy as np
import onnx
import onnxruntime as ort


def session(path, names):
    model = onnx.load(path)
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString())


float_model = onnx.load(sys.argv[1])
relus = [node.output[0] for node in float_model.graph.node if node.op_type in ("Relu", "Clip")]
raw = gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read()[16:]
images = np.frombuffer(raw, dtype=np.uint8)[:512 * 784].reshape(512, 1, 28, 28).astype(np.float32) / 255
images = (images - 0.2860) / 0.3530
logits = float_model.graph.output[0].name
reference = session(sys.argv[1], relus).run(None, {float_model.graph.input[0].name: images})
rows = {}
for argument in sys.argv[2:]:
    name, path = argument.split("=", 1)
    s = session(path, relus)
    outputs = s.run(None, {s.get_inputs()[0].name: images})
    rows[name] = [float(((q - f) ** 2).sum() / (f ** 2).sum()) for q, f in zip(outputs, reference)]
print(f"{'output':28s} " + " ".join(f"{name:>10s}" for name in rows))
for k, output in enumerate([logits] + relus):
    print(f"{output:28s} " + " ".join(f"{rows[name][k]:10.4f}" for name in rows))

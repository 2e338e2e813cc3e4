"""PyTorch's timings of dsg-bench's comparison workloads: the reference for Docs/PERFORMANCE.md's ratios.

PyTorch is a tool here, never a dependency of the package. In a throwaway virtual environment:

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch torchvision
    /tmp/torchvenv/bin/python Benchmarks/pytorch/reference_timings.py --output torch-timings.json [--quick]
    swift run -c release dsg-bench --reference torch-timings.json

The workloads are the ones `dsg-bench --reference` runs on our side, with the same loss and the same shapes:

- `resnet20DSGIteration`: one iteration of the `dsg` preset (Docs/DSG.md sections 1-6) on the embedded
  ResNet-20 (1x28x28), batch 64: forward in evaluation mode with the BatchNorm inputs captured, slack
  alignment with per-layer margins from the starting Gaussian batch, the paper's x2 layer enhancement,
  cross-entropy to random labels, the input statistics, correlation inhibition against a fresh Gaussian
  spectrum (eigenvalues in float64), total variation on rolled images, L2; backward to the images only (the
  weights do not require gradients, which is what a careful PyTorch user writes); Adam and ReduceLROnPlateau.
- `resnet18DSGIteration`, `mobileNetV2DSGIteration`: the same at 3x224x224, batch 8, on torchvision's
  ResNet-18 and MobileNetV2 with their initial weights (BatchNorm statistics 0 and 1: the timing does not
  depend on them).
- `efficientNetLite0DSGIteration`: the same on EfficientNet-Lite0 as `efficientnet-lite-pytorch` builds it for
  the ONNX fixture our side imports (`.ci/large-fixtures.sh`), initial weights. Skipped unless that package is
  importable: `pip install --no-deps --target DIR efficientnet-lite-pytorch==0.1.0`, then `PYTHONPATH=DIR`.
- `resnet20Inference`: the embedded ResNet-20 on 10,000 Gaussian images, forward only (inference mode), in
  batches of 100 and 256, NCHW and channels-last; images per second.
- `resnet20ConvolutionRates`: GFLOP/s of one 3x3 stride-1 convolution at each of ResNet-20's three shapes
  (16 channels at 28x28, 32 at 14x14, 64 at 7x7; batch 100, forward, inference mode, both layouts), and of a
  2048x2048 matrix product: how fast PyTorch's kernels run on this machine, beside our convolutions and
  OpenBLAS's SGEMM.

Each iteration figure is the median over the timed iterations after warm-up; each throughput the median of
three passes. `--only NAME` runs one workload for a longer time (for `/usr/bin/time -v`'s peak RSS).
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
EMBEDDED = os.path.join(ROOT, "Sources/DSG/Resources/resnet20-fashion-mnist.safetensors")


def resnet20_class():
    """The ResNet-20 of the golden fixtures' script (one definition of the network in Python)."""
    path = os.path.join(ROOT, "Tests/DSGCoreTests/Fixtures/generate_fixtures.py")
    spec = importlib.util.spec_from_file_location("generate_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ResNet20


def read_safetensors(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", f"{name}: {entry['dtype']}"
        start, end = entry["data_offsets"]
        array = np.frombuffer(data[start:end], dtype="<f4").reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def embedded_resnet20():
    model = resnet20_class()(cin=1, classes=10)
    state = read_safetensors(EMBEDDED)
    # BatchNorm's step counter is not in the file; everything else must match by name and shape.
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(name.endswith("num_batches_tracked") for name in missing), (missing, unexpected)
    return model


class DSGLoss:
    """The `dsg` preset's loss on one batch of images (Docs/DSG.md): the BatchNorm inputs are captured by
    forward hooks, as PyTorch users do."""

    def __init__(self, model, start, classes, generator):
        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        self.captured = [None] * len(self.layers)
        for index, layer in enumerate(self.layers):
            layer.register_forward_hook(self.capture(index))
        self.generator = generator
        n = start.shape[0]
        self.labels = torch.randint(0, classes, (n,), generator=generator)
        count = len(self.layers)
        self.enhancement = torch.ones(n, count)
        self.enhancement[torch.arange(n), torch.arange(n) % count] = 2
        self.means = [layer.running_mean for layer in self.layers]
        self.deviations = [torch.sqrt(layer.running_var + 1e-6) for layer in self.layers]
        # Per-layer margins: the 0.9 quantile of the starting batch's distances from the stored statistics.
        with torch.no_grad():
            model(start)
            self.mean_margins, self.deviation_margins = [], []
            for index in range(count):
                m, s = self.statistics(self.captured[index])
                self.mean_margins.append(torch.quantile((m - self.means[index]).abs().flatten(), 0.9))
                self.deviation_margins.append(torch.quantile((s - self.deviations[index]).abs().flatten(), 0.9))

    def capture(self, index):
        def hook(module, inputs, output):
            self.captured[index] = inputs[0]

        return hook

    @staticmethod
    def statistics(a):
        """Per-sample, per-channel mean and deviation (unbiased variance + 1e-6) over the plane."""
        return a.mean(dim=(2, 3)), torch.sqrt(a.var(dim=(2, 3), unbiased=True) + 1e-6)

    def __call__(self, x):
        n = x.shape[0]
        logits = self.model(x)
        alignment = x.new_zeros(())
        for index in range(len(self.layers)):
            m, s = self.statistics(self.captured[index])
            hinge_m = F.relu((m - self.means[index]).abs() - self.mean_margins[index]) ** 2
            hinge_s = F.relu((s - self.deviations[index]).abs() - self.deviation_margins[index]) ** 2
            alignment = alignment + (self.enhancement[:, index] * (hinge_m + hinge_s).sum(dim=1)).sum() / n
        m, s = self.statistics(x)
        input_statistics = (m**2 + (s - 1) ** 2).sum() / n
        cross_entropy = F.cross_entropy(logits, self.labels)
        # Correlation inhibition: the cosine-similarity spectrum against a fresh Gaussian batch's.
        flat = F.normalize(x.flatten(1), dim=1, eps=1e-12)
        eigenvalues = torch.linalg.eigvalsh((flat @ flat.t()).double())
        with torch.no_grad():
            g = F.normalize(torch.randn(x.shape, generator=self.generator).flatten(1), dim=1, eps=1e-12)
            reference = torch.linalg.eigvalsh((g @ g.t()).double())
        correlation = (1e-4 * ((eigenvalues - reference) ** 2).mean()).float()
        r = int(torch.randint(-4, 4, (1,), generator=self.generator))
        j = torch.roll(x, shifts=(r, r), dims=(2, 3))
        tv = (
            torch.norm(j[:, :, :, :-1] - j[:, :, :, 1:])
            + torch.norm(j[:, :, :-1, :] - j[:, :, 1:, :])
            + torch.norm(j[:, :, 1:, :-1] - j[:, :, :-1, 1:])
            + torch.norm(j[:, :, :-1, :-1] - j[:, :, 1:, 1:])
        )
        l2 = x.flatten(1).norm(dim=1).mean()
        return (
            alignment
            + input_statistics
            + 2 * cross_entropy
            + correlation / len(self.layers)
            + 0.01 * tv
            + 0.01 * l2
        )


def dsg_iteration_milliseconds(model, shape, batch, classes, iterations, warmup=3):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *shape), generator=generator)
    loss_fn = DSGLoss(model, x, classes, generator)
    x.requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=0.25)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=250, min_lr=1e-4)
    times = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=False)
        loss = loss_fn(x)
        loss.backward()
        optimizer.step()
        plateau.step(loss.item())
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def inference_images_per_second(model, batch, channels_last, images=10_000, passes=3):
    model.eval()
    data = torch.randn((images, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        data = data.contiguous(memory_format=torch.channels_last)
    rates = []
    with torch.inference_mode():
        model(data[:batch])  # warm-up
        for _ in range(passes):
            start = time.perf_counter()
            for first in range(0, images, batch):
                model(data[first : first + batch])
            rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


RESNET20_3X3_SHAPES = ((16, 28), (32, 14), (64, 7))  # channels in = out, plane size: 95% of ResNet-20's FLOPs


def convolution_rates(batch=100, seconds=1.0):
    """GFLOP/s of one 3x3 stride-1 convolution (no bias, inference mode) per ResNet-20 shape in both layouts, and
    of a 2048x2048 matrix product: the rates PyTorch's kernels reach on this machine."""
    rates = {}
    with torch.inference_mode():
        for channels, size in RESNET20_3X3_SHAPES:
            flops = 2 * batch * size * size * channels * channels * 9
            for layout in ("nchw", "nhwc"):
                conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
                x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))
                if layout == "nhwc":
                    conv = conv.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                rates[f"conv{channels}x{size}{layout.upper()}"] = flops / median_seconds(lambda: conv(x), seconds) / 1e9
        a = torch.randn(2048, 2048, generator=torch.Generator().manual_seed(2))
        rates["matmul2048"] = 2 * 2048**3 / median_seconds(lambda: a @ a, seconds) / 1e9
    return rates


def median_seconds(call, seconds, repetitions=5):
    """The median over `repetitions` of the mean time of `call` in a run of about `seconds`, after a warm-up."""
    call()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / repetitions:
        call()
        count += 1
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(count):
            call()
        times.append((time.perf_counter() - start) / count)
    return statistics.median(times)


def torchvision_model(name):
    """A torchvision model with its initial weights (imported here: the ResNet-20 workloads run without it)."""
    import torchvision

    return getattr(torchvision.models, name)()


def efficientnet_lite0():
    """EfficientNet-Lite0 built as the large fixtures' export builds it (fixed "same" padding for 224x224)."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def workloads(quick):
    small, large = (5, 3) if quick else (30, 10)
    return {
        "resnet20DSGIteration": lambda: {
            "batch": 64,
            "milliseconds": dsg_iteration_milliseconds(embedded_resnet20(), (1, 28, 28), 64, 10, small),
        },
        "resnet18DSGIteration": lambda: {
            "batch": 8,
            "milliseconds": dsg_iteration_milliseconds(
                torchvision_model("resnet18"), (3, 224, 224), 8, 1000, large
            ),
        },
        "mobileNetV2DSGIteration": lambda: {
            "batch": 8,
            "milliseconds": dsg_iteration_milliseconds(
                torchvision_model("mobilenet_v2"), (3, 224, 224), 8, 1000, large
            ),
        },
        "efficientNetLite0DSGIteration": lambda: {
            "batch": 8,
            "milliseconds": dsg_iteration_milliseconds(efficientnet_lite0(), (3, 224, 224), 8, 1000, large),
        },
        "resnet20Inference": lambda: {
            "images": 10_000,
            "imagesPerSecond": {
                f"{layout}Batch{batch}": inference_images_per_second(embedded_resnet20(), batch, layout == "nhwc")
                for layout in ("nchw", "nhwc")
                for batch in (100, 256)
            },
        },
        "resnet20ConvolutionRates": lambda: {"batch": 100, "gflops": convolution_rates()},
    }


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="torch-timings.json")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (noisier; for smoke tests)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", help="run one workload (its name as in the JSON)")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    chosen = workloads(arguments.quick)
    if arguments.only:
        chosen = {arguments.only: chosen[arguments.only]}
    results = {}
    for name, run in chosen.items():
        try:
            results[name] = run()
        except ModuleNotFoundError as error:  # a workload whose model package is not installed
            print(name, "skipped:", error, flush=True)
            continue
        print(name, json.dumps(results[name]), flush=True)
    report = {
        "machine": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cpu": cpu_name(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "quick": arguments.quick,
        },
        "workloads": results,
    }
    temporary = arguments.output + ".partial"
    with open(temporary, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(temporary, arguments.output)
    print("wrote", arguments.output)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Golden values for swift-dsg's operator and model tests, computed with PyTorch on the CPU.

Run by hand (never by CI) from this folder:  /usr/bin/python3 generate_fixtures.py
Needs Debian's python3-torch (or PyPI's torch). Writes ops.json and resnet20.json next to this script and Tests/DSGTests/Fixtures/generator.json;
each file records the PyTorch version, the seed and this command. Inputs are stored with the outputs, so the
Swift tests need nothing but the JSON.
"""
import json
import math

import torch
import torch.nn.functional as F

SEED = 20261128
torch.manual_seed(SEED)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def tensor_entry(t):
    return {"shape": list(t.shape), "data": flat(t)}


def op_case(fn, inputs, params, upstream_shape_from_output=True, train=None, extra=None, grad_inputs=None):
    """Runs fn(*inputs, **params) forward, then backward with a random upstream gradient."""
    leaves = [x.clone().requires_grad_(grad_inputs[i] if grad_inputs else x.is_floating_point())
              for i, x in enumerate(inputs)]
    ps = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = fn(*leaves, **ps)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    case = {
        "inputs": [tensor_entry(x) for x in inputs],
        "params": {k: tensor_entry(v) for k, v in params.items()},
        "upstream": tensor_entry(upstream),
        "output": tensor_entry(out),
        "input_grads": [tensor_entry(x.grad) if x.grad is not None else None for x in leaves],
        "param_grads": {k: tensor_entry(v.grad) for k, v in ps.items()},
    }
    if extra:
        case.update(extra)
    return case


def conv_case(n, c, h, w, o, k, stride=1, padding=0, dilation=1, groups=1, bias=False):
    x = torch.randn(n, c, h, w)
    wt = torch.randn(o, c // groups, k, k) * 0.3
    params = {"weight": wt}
    if bias:
        params["bias"] = torch.randn(o)

    def fn(x, weight, bias=None):
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)

    return op_case(fn, [x], params, extra={"config": {
        "out_channels": o, "kernel": k, "stride": stride, "padding": padding, "dilation": dilation,
        "groups": groups, "bias": bias}})


def batchnorm_case(training, affine=True, shape=(4, 3, 5, 5), eps=1e-5, momentum=0.1):
    x = torch.randn(*shape) * 2 + 0.5
    c = shape[1]
    running_mean = torch.randn(c) * 0.1
    running_var = torch.rand(c) + 0.5
    params = {"weight": torch.randn(c), "bias": torch.randn(c)} if affine else {}
    rm, rv = running_mean.clone(), running_var.clone()

    def fn(x, weight=None, bias=None):
        return F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=momentum, eps=eps)

    case = op_case(fn, [x], params, extra={"config": {"training": training, "affine": affine, "eps": eps, "momentum": momentum}})
    case["running_mean_before"] = tensor_entry(running_mean)
    case["running_var_before"] = tensor_entry(running_var)
    case["running_mean_after"] = tensor_entry(rm)
    case["running_var_after"] = tensor_entry(rv)
    return case


def away_from_zero(shape, gap=0.05):
    x = torch.randn(*shape)
    return torch.where(x.abs() < gap, x.sign() * gap + x, x)


def ops_fixtures():
    cases = {}
    cases["conv_3x3_pad1"] = conv_case(2, 3, 6, 6, 4, 3, padding=1)
    cases["conv_3x3_stride2_bias"] = conv_case(2, 4, 7, 7, 5, 3, stride=2, padding=1, bias=True)
    cases["conv_3x3_dilation2"] = conv_case(1, 2, 8, 8, 3, 3, padding=2, dilation=2)
    cases["conv_groups2"] = conv_case(2, 4, 5, 5, 6, 3, padding=1, groups=2)
    cases["conv_depthwise_stride2"] = conv_case(2, 4, 6, 6, 4, 3, stride=2, padding=1, groups=4)
    cases["conv_1x1_bias"] = conv_case(2, 5, 4, 4, 3, 1, bias=True)
    cases["conv_1x1_stride2"] = conv_case(2, 3, 5, 5, 4, 1, stride=2)
    cases["conv_5x5_nopad"] = conv_case(1, 2, 7, 6, 2, 5)
    cases["batchnorm_train"] = batchnorm_case(True)
    cases["batchnorm_eval"] = batchnorm_case(False)
    cases["batchnorm_train_affine_free"] = batchnorm_case(True, affine=False)
    cases["batchnorm1d_train"] = batchnorm_case(True, shape=(6, 5))
    cases["relu"] = op_case(F.relu, [away_from_zero((2, 3, 4))], {})
    x6 = away_from_zero((2, 3, 4)) * 4
    x6 = torch.where((x6 - 6).abs() < 0.05, x6 + 0.1, x6)
    cases["relu6"] = op_case(F.relu6, [x6], {})
    cases["leaky_relu"] = op_case(lambda x: F.leaky_relu(x, 0.2), [away_from_zero((2, 3, 4))], {}, extra={"config": {"slope": 0.2}})
    cases["tanh"] = op_case(torch.tanh, [torch.randn(2, 3, 4)], {})
    cases["maxpool_3x3_s2_p1"] = op_case(lambda x: F.max_pool2d(x, 3, 2, 1), [torch.randn(2, 3, 7, 7)], {},
                                         extra={"config": {"kernel": 3, "stride": 2, "padding": 1}})
    cases["maxpool_2x2_s2"] = op_case(lambda x: F.max_pool2d(x, 2, 2), [torch.randn(2, 2, 6, 6)], {},
                                      extra={"config": {"kernel": 2, "stride": 2, "padding": 0}})
    cases["avgpool_3x3_s2_p1"] = op_case(lambda x: F.avg_pool2d(x, 3, 2, 1), [torch.randn(2, 3, 7, 7)], {},
                                         extra={"config": {"kernel": 3, "stride": 2, "padding": 1}})
    cases["global_avgpool"] = op_case(lambda x: F.adaptive_avg_pool2d(x, 1), [torch.randn(2, 3, 5, 4)], {})
    cases["linear"] = op_case(F.linear, [torch.randn(3, 5)], {"weight": torch.randn(4, 5), "bias": torch.randn(4)})
    cases["add"] = op_case(lambda a, b, c: a + b + c, [torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4)], {})
    cases["multiply"] = op_case(lambda a, b: a * b, [torch.randn(2, 3, 4), torch.randn(2, 3, 4)], {})
    cases["concat"] = op_case(lambda a, b: torch.cat([a, b], 1), [torch.randn(2, 2, 3, 3), torch.randn(2, 3, 3, 3)], {})
    cases["upsample_nearest2x"] = op_case(lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), [torch.randn(2, 3, 3, 4)], {})
    cases["flatten"] = op_case(lambda x: x.reshape(x.shape[0], -1), [torch.randn(2, 3, 2, 2)], {})
    labels = torch.tensor([3.0, 0.0, 4.0, 3.0])
    cases["embedding"] = op_case(lambda y, weight: F.embedding(y.long(), weight), [labels],
                                 {"weight": torch.randn(5, 6)}, grad_inputs=[False])
    # Added later: drawn from their own seed so the cases above keep their values.
    with torch.random.fork_rng():
        torch.manual_seed(SEED + 1)
        cases["conditional_batchnorm_train"] = conditional_batchnorm_case(True)
        cases["conditional_batchnorm_eval"] = conditional_batchnorm_case(False)
    with torch.random.fork_rng():
        torch.manual_seed(SEED + 2)
        cases["sigmoid"] = op_case(torch.sigmoid, [torch.randn(2, 3, 4) * 3], {})
        # Away from the kinks at -3 and 3, where the one-sided derivatives differ.
        xh = torch.randn(2, 3, 4) * 3
        xh = torch.where(((xh.abs() - 3).abs() < 0.05), xh * 1.1, xh)
        cases["hardsigmoid"] = op_case(F.hardsigmoid, [xh], {})
        cases["hardswish"] = op_case(F.hardswish, [xh], {})
    with torch.random.fork_rng():
        torch.manual_seed(SEED + 3)
        cases["channel_multiply"] = op_case(lambda a, b: a * b, [torch.randn(2, 3, 4, 5), torch.randn(2, 3, 1, 1)], {})
        cases["scale"] = op_case(lambda x: 2.5 * x, [torch.randn(2, 3, 4)], {}, extra={"config": {"factor": 2.5}})
    with torch.random.fork_rng():
        torch.manual_seed(SEED + 4)
        cases["pad_same_end"] = op_case(lambda x: F.pad(x, (0, 1, 0, 1)), [torch.randn(2, 3, 4, 5)], {},
                                        extra={"config": {"top": 0, "bottom": 1, "left": 0, "right": 1, "value": 0.0}})
        cases["pad_value"] = op_case(lambda x: F.pad(x, (2, 1, 1, 0), value=-0.5), [torch.randn(2, 2, 3, 3)], {},
                                     extra={"config": {"top": 1, "bottom": 0, "left": 2, "right": 1, "value": -0.5}})
        # Away from the bounds, where the one-sided derivatives differ.
        xc = torch.randn(2, 3, 4) * 2
        xc = torch.where(((xc + 1).abs() < 0.05) | ((xc - 1.5).abs() < 0.05), xc * 1.1, xc)
        cases["clip"] = op_case(lambda x: torch.clamp(x, -1, 1.5), [xc], {},
                                extra={"config": {"lower": -1.0, "upper": 1.5}})
        cases["bias_image"] = op_case(lambda x, bias: x + bias.view(1, -1, 1, 1), [torch.randn(2, 3, 4, 5)],
                                      {"bias": torch.randn(3)})
        cases["bias_vector"] = op_case(lambda x, bias: x + bias, [torch.randn(3, 5)], {"bias": torch.randn(5)})
        cases["channel_add"] = op_case(lambda a, b: a + b, [torch.randn(2, 3, 4, 5), torch.randn(2, 3, 1, 1)], {})
    return cases


def conditional_batchnorm_case(training, shape=(4, 3, 5, 5), classes=5, eps=1e-5, momentum=0.1):
    """Class-conditional BatchNorm (Docs/DSG.md §10.1): affine-free batch norm, then weight[y] x + bias[y]."""
    x = torch.randn(*shape) * 2 + 0.5
    c = shape[1]
    labels = torch.tensor([3.0, 0.0, 4.0, 3.0])
    running_mean, running_var = torch.randn(c) * 0.1, torch.rand(c) + 0.5
    rm, rv = running_mean.clone(), running_var.clone()

    def fn(x, y, weight, bias):
        h = F.batch_norm(x, rm, rv, None, None, training=training, momentum=momentum, eps=eps)
        return h * weight[y.long()][:, :, None, None] + bias[y.long()][:, :, None, None]

    case = op_case(fn, [x, labels], {"weight": 1 + 0.5 * torch.randn(classes, c), "bias": torch.randn(classes, c)},
                   grad_inputs=[True, False], extra={"config": {"training": training, "eps": eps, "momentum": momentum}})
    case["running_mean_before"] = tensor_entry(running_mean)
    case["running_var_before"] = tensor_entry(running_var)
    case["running_mean_after"] = tensor_entry(rm)
    case["running_var_after"] = tensor_entry(rv)
    return case


def loss_fixtures():
    cases = {}
    logits = torch.randn(5, 7) * 2
    labels = torch.tensor([0, 6, 3, 3, 1])
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg, labels)
    loss.backward()
    cases["cross_entropy"] = {"logits": tensor_entry(logits), "labels": labels.tolist(),
                              "loss": float(loss), "grad": tensor_entry(lg.grad)}
    student, teacher = torch.randn(4, 6) * 3, torch.randn(4, 6) * 3
    for reduction, name in [("batchmean", "kl_batchmean_T4"), ("mean", "kl_elementmean_T4")]:
        s = student.clone().requires_grad_(True)
        loss = F.kl_div(F.log_softmax(s / 4, 1), F.softmax(teacher / 4, 1), reduction=reduction)
        loss.backward()
        cases[name] = {"student": tensor_entry(student), "teacher": tensor_entry(teacher), "temperature": 4.0,
                       "loss": float(loss), "grad": tensor_entry(s.grad)}
    pred, target = torch.randn(3, 4), torch.randn(3, 4)
    p = pred.clone().requires_grad_(True)
    loss = F.mse_loss(p, target)
    loss.backward()
    cases["mse"] = {"prediction": tensor_entry(pred), "target": tensor_entry(target), "loss": float(loss),
                    "grad": tensor_entry(p.grad)}
    return cases


def optimizer_fixtures():
    """Five steps of each optimizer on f(p) = sum(c * p^2) + sum(d * p), whose gradient is 2 c p + d."""
    cases = {}
    p0, c, d = torch.randn(6), torch.rand(6) + 0.5, torch.randn(6)
    configs = {
        "sgd_plain": (torch.optim.SGD, {"lr": 0.1}),
        "sgd_momentum_wd": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2}),
        "sgd_nesterov_wd": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
        "adam": (torch.optim.Adam, {"lr": 0.1}),
        "adam_betas_wd": (torch.optim.Adam, {"lr": 0.01, "betas": (0.5, 0.999), "weight_decay": 1e-3}),
    }
    for name, (cls, kwargs) in configs.items():
        p = p0.clone().requires_grad_(True)
        opt = cls([p], **kwargs)
        trajectory = []
        for _ in range(5):
            opt.zero_grad()
            (c * p * p + d * p).sum().backward()
            opt.step()
            trajectory.append(flat(p))
        cases[name] = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
                       "p0": flat(p0), "c": flat(c), "d": flat(d), "trajectory": trajectory}
    p = torch.zeros(1, requires_grad=True)
    schedules = {}
    for name, make in [("cosine_T10_min0.01", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.01)),
                       ("multistep_3_7_gamma0.1", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [3, 7], 0.1))]:
        opt = torch.optim.SGD([p], lr=0.5)
        sched = make(opt)
        rates = []
        for _ in range(12):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        schedules[name] = rates
    cases["schedules"] = {"base": 0.5, "rates": schedules}
    return cases


# ResNet-20 parity: weights and inputs come from an integer hash that the Swift test evaluates too, so no
# weight file is needed. See formula_value() and its Swift twin in ResNet20ParityTests.swift.
def hash_uniform(index, i):
    """A value in [-1, 1) from an integer hash of (index, i): identical in Python and Swift."""
    h = (i * 2654435761 + index * 40503 + 12345) % 2**32
    h ^= h >> 16
    h = (h * 73244475) % 2**32
    h ^= h >> 16
    return 2.0 * h / 2**32 - 1.0


def formula_value(kind, index, i, fan_in):
    s = hash_uniform(index, i)
    if kind == "weight_conv" or kind == "weight_linear":
        return s * math.sqrt(6.0 / fan_in)
    if kind == "bn_weight":
        return 1.0 + 0.2 * s
    if kind in ("bias", "bn_bias", "running_mean"):
        return 0.1 * s
    if kind == "running_var":
        return 0.6 + 0.4 * s * s
    raise ValueError(kind)


class Block(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = torch.nn.Module()
            self.shortcut.conv = torch.nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.shortcut.bn = torch.nn.BatchNorm2d(cout)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x if self.shortcut is None else self.shortcut.bn(self.shortcut.conv(x))
        return F.relu(h + s)


class ResNet20(torch.nn.Module):
    def __init__(self, cin=1, classes=10):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        c = 16
        for si, width in enumerate([16, 32, 64]):
            stage = torch.nn.Module()
            for bi in range(3):
                stride = 2 if si > 0 and bi == 0 else 1
                setattr(stage, f"block{bi}", Block(c, width, stride))
                c = width
            setattr(self, f"stage{si + 1}", stage)
        self.fc = torch.nn.Linear(64, classes)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        for si in range(1, 4):
            stage = getattr(self, f"stage{si}")
            for bi in range(3):
                h = getattr(stage, f"block{bi}")(h)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def kind_of(name, tensor):
    leaf = name.split(".")[-1]
    if leaf in ("running_mean", "running_var"):
        return leaf
    is_bn = ".bn" in "." + name or name.startswith("bn")
    if leaf == "weight":
        return "bn_weight" if is_bn else ("weight_conv" if tensor.dim() == 4 else "weight_linear")
    return "bn_bias" if is_bn else "bias"


def fill_hashed(model):
    """Sets every tensor of the state dict from the hash (twin: HashedWeights.fill); returns their names."""
    state = model.state_dict()
    names = [n for n in state if not n.endswith("num_batches_tracked")]
    with torch.no_grad():
        for index, name in enumerate(names):
            t = state[name]
            fan_in = t[0].numel() if t.dim() > 1 else 1
            values = [formula_value(kind_of(name, t), index, i, fan_in) for i in range(t.numel())]
            t.copy_(torch.tensor(values, dtype=torch.float32).reshape(t.shape))
    return names


def resnet20_fixture():
    model = ResNet20()
    names = fill_hashed(model)
    n = 4
    x = torch.tensor([1.5 * hash_uniform(999, i) for i in range(n * 28 * 28)], dtype=torch.float32).reshape(n, 1, 28, 28)
    r = torch.tensor([hash_uniform(1000, i) for i in range(n * 10)], dtype=torch.float32).reshape(n, 10)
    result = {"tensor_order": names, "batch": n}
    for mode in ("eval", "train"):
        m = ResNet20()
        m.load_state_dict(model.state_dict())
        m.train(mode == "train")
        xi = x.clone().requires_grad_(True)
        logits = m(xi)
        (logits * r).sum().backward()
        entry = {"logits": flat(logits), "input_grad": flat(xi.grad),
                 "conv1_weight_grad": flat(m.conv1.weight.grad), "fc_weight_grad": flat(m.fc.weight.grad),
                 "stage3_block0_shortcut_bn_weight_grad": flat(m.stage3.block0.shortcut.bn.weight.grad)}
        if mode == "train":
            entry["bn1_running_mean_after"] = flat(m.bn1.running_mean)
            entry["stage3_block2_bn2_running_var_after"] = flat(m.stage3.block2.bn2.running_var)
        result[mode] = entry
    return result


class Generator(torch.nn.Module):
    """GDFQ's generator (Docs/DSG.md §10.1), with the parameter names of swift-dsg's Generator."""

    def __init__(self, classes=10, latent=100, channels=1, size=28):
        super().__init__()
        self.s0 = size // 4
        self.embedding = torch.nn.Embedding(classes, latent)
        self.fc = torch.nn.Linear(latent, 128 * self.s0 * self.s0)
        self.bn0 = torch.nn.BatchNorm2d(128)
        self.conv1 = torch.nn.Conv2d(128, 128, 3, 1, 1)
        self.bn1 = torch.nn.BatchNorm2d(128, 0.8)
        self.conv2 = torch.nn.Conv2d(128, 64, 3, 1, 1)
        self.bn2 = torch.nn.BatchNorm2d(64, 0.8)
        self.conv3 = torch.nn.Conv2d(64, channels, 3, 1, 1)
        self.output_bn = torch.nn.BatchNorm2d(channels, affine=False)

    def forward(self, z, labels):
        h = self.fc(self.embedding(labels) * z).view(z.shape[0], 128, self.s0, self.s0)
        h = F.interpolate(self.bn0(h), scale_factor=2)
        h = F.leaky_relu(self.bn1(self.conv1(h)), 0.2)
        h = F.interpolate(h, scale_factor=2)
        h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)
        return self.output_bn(torch.tanh(self.conv3(h)))


def generator_fixture():
    """The generator in training mode on hashed weights and inputs: images, gradients of sum(images * r), and
    running statistics after the pass."""
    model = Generator()
    names = fill_hashed(model)
    n = 4
    z = torch.tensor([hash_uniform(997, i) for i in range(n * 100)], dtype=torch.float32).reshape(n, 100)
    labels = torch.tensor([int((hash_uniform(998, i) + 1) * 5) for i in range(n)])
    r = torch.tensor([hash_uniform(1000, i) for i in range(n * 784)], dtype=torch.float32).reshape(n, 1, 28, 28)
    model.train()
    z.requires_grad_(True)
    images = model(z, labels)
    (images * r).sum().backward()
    return {"tensor_order": names, "batch": n, "labels": labels.tolist(), "images": flat(images),
            "z_grad": flat(z.grad), "embedding_weight_grad": flat(model.embedding.weight.grad),
            "fc_bias_grad": flat(model.fc.bias.grad), "conv3_weight_grad": flat(model.conv3.weight.grad),
            "bn1_weight_grad": flat(model.bn1.weight.grad),
            "bn1_running_mean_after": flat(model.bn1.running_mean),
            "output_bn_running_var_after": flat(model.output_bn.running_var)}


def provenance():
    return {"generator": "Tests/DSGCoreTests/Fixtures/generate_fixtures.py", "command": "/usr/bin/python3 generate_fixtures.py",
            "torch": torch.__version__, "seed": SEED}


if __name__ == "__main__":
    with open("ops.json", "w") as f:
        json.dump({"provenance": provenance(), "ops": ops_fixtures(), "losses": loss_fixtures(),
                   "optimizers": optimizer_fixtures()}, f)
    with open("resnet20.json", "w") as f:
        json.dump({"provenance": provenance(), **resnet20_fixture()}, f)
    with open("../../DSGTests/Fixtures/generator.json", "w") as f:
        json.dump({"provenance": provenance(), **generator_fixture()}, f)
    print("wrote ops.json, resnet20.json and ../../DSGTests/Fixtures/generator.json")

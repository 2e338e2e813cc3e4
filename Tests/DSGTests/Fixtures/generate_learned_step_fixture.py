#!/usr/bin/python3
"""Golden values for LearnedStepQuantOp (LSQ, as BRECQ and QDrop learn activation step sizes), from PyTorch.

Run by hand (never by CI) from this folder:  /usr/bin/python3 generate_learned_step_fixture.py
Needs Debian's python3-torch (or PyPI's torch). Writes learned_step_quant.json next to this script, with the
PyTorch version, the seed and this command.

PyTorch's torch._fake_quantize_learnable_per_tensor_affine computes, for scale s and zero point zp,
clamp(round(x * (1/s) + zp), 0, 2^k - 1) - zp, times s, and LSQ's gradients for x and s (grad_factor 1). Our op's
signed zero point z (UniformQuantizer's convention) is 2^(k-1) - zp.
"""
import json

import torch

SEED = 20261205
torch.manual_seed(SEED)


def case(bits, step, zp, n):
    # Values spread over the range and beyond both ends, so both clamps and the inside are exercised.
    low, high = -zp * step, (2 ** bits - 1 - zp) * step
    x = (torch.rand(n) * 2.0 - 0.5) * (high - low) + low
    scale = torch.tensor([step], requires_grad=True)
    leaf = x.clone().requires_grad_(True)
    out = torch._fake_quantize_learnable_per_tensor_affine(
        leaf, scale, torch.tensor([float(zp)]), 0, 2 ** bits - 1, 1.0)
    upstream = torch.randn(n)
    (out * upstream).sum().backward()
    return {
        "bits": bits, "step": scale.item(), "zero_point": 2 ** (bits - 1) - zp,
        "x": x.tolist(), "upstream": upstream.tolist(), "output": out.detach().tolist(),
        "x_grad": leaf.grad.tolist(), "step_grad": scale.grad.item(),
    }


cases = [case(2, 0.37, 0, 64), case(3, 0.11, 2, 64), case(4, 0.05, 0, 128), case(8, 0.013, 128, 128)]
with open("learned_step_quant.json", "w") as f:
    json.dump({"torch": torch.__version__, "seed": SEED,
               "command": "/usr/bin/python3 generate_learned_step_fixture.py", "cases": cases}, f)
print("wrote learned_step_quant.json")

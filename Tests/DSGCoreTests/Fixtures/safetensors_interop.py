#!/usr/bin/env python3
"""Checks, once and by hand, that swift-dsg's safetensors files and Python's `safetensors` package agree.

Run from this folder with Python's safetensors and numpy installed (pip install safetensors numpy):
    python3 safetensors_interop.py

1. Reads swift_written.safetensors, which swift-dsg wrote (Safetensors.write of SafetensorsTests.sample()),
   and checks every tensor and the metadata against the values below.
2. Writes python_written.safetensors with the same values; SafetensorsTests reads it in Swift (in CI).
"""
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

EXPECTED = {
    "a.weight": np.array([[1, -2, 3.5], [0, 3.25, -1e-8]], dtype=np.float32),
    "b": np.array(7, dtype=np.float32),
}
METADATA = {"note": "test"}

with safe_open("swift_written.safetensors", framework="numpy") as f:
    assert sorted(f.keys()) == sorted(EXPECTED), f.keys()
    for name, value in EXPECTED.items():
        got = f.get_tensor(name)
        assert got.dtype == np.float32 and got.shape == value.shape, (name, got.dtype, got.shape)
        assert np.array_equal(got, value), (name, got, value)
    assert f.metadata() == METADATA, f.metadata()
print("swift_written.safetensors: read by Python safetensors, values and metadata match")

save_file(EXPECTED, "python_written.safetensors", metadata=METADATA)
print("python_written.safetensors: written by Python safetensors")

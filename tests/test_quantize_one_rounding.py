"""One per-channel weight quantizer: every caller gets identical bytes, and the
rounding is the device's (rint(w * fp32(1/scale)), kernels/common/epilogue.h)."""

from __future__ import annotations

import numpy as np

from xdna_ep.kernel_specs import matmul as mm
from xdna_ep.quantize import quantize_constants, quantize_per_channel


def _weights() -> np.ndarray:
    rng = np.random.default_rng(21)
    w = (rng.standard_normal((96, 40)) * 0.05).astype(np.float32)
    w[:, 7] = 0.0
    # values that sit on a rounding boundary: w / s and w * (1/s) differ here
    s = np.float32(np.abs(w[:, 3]).max() / np.float32(127.0))
    w[:5, 3] = (np.arange(5, dtype=np.float32) + np.float32(0.5)) * s
    return w


def test_every_caller_gets_identical_bytes() -> None:
    w = _weights()
    q0, s0 = quantize_per_channel(w, axis=1)
    q1, s1 = mm.quantize_weights_per_channel(w)
    c = quantize_constants("matmul", {"weight": w}, "fc")
    assert q0.tobytes() == q1.tobytes() == c["weight"].tobytes()
    assert s0.tobytes() == s1.tobytes() == c["w_scale"].tobytes()
    # conv1d: output channel on axis 0, same rule
    cw = np.ascontiguousarray(w.T.reshape(40, 8, 12))
    cc = quantize_constants("conv1d", {"weight": cw}, "conv")
    q2, s2 = quantize_per_channel(cw, axis=0)
    assert cc["weight"].tobytes() == q2.tobytes() and cc["w_scale"].tobytes() == s2.tobytes()


def test_rounding_is_the_device_reciprocal() -> None:
    w = _weights()
    q, s = quantize_per_channel(w, axis=1)
    inv = (np.float32(1.0) / s).astype(np.float32)
    want = np.clip(np.rint(w * inv[None, :]), -127, 127).astype(np.int8)
    np.testing.assert_array_equal(q, want)

"""Per-output-channel INT8 weight quantization (symmetric, narrow range)."""

from __future__ import annotations

import numpy as np
import pytest

from xdna_ep.quantize import QuantizedRegion, WeightError, quantize_constants, quantize_per_channel


def test_per_channel_scale_and_error_bound() -> None:
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((384, 96)) * np.linspace(0.001, 0.2, 96)).astype(np.float32)
    q, s = quantize_per_channel(w, axis=1)
    assert q.dtype == np.int8 and s.dtype == np.float32 and s.shape == (96,)
    # scale_n = max|w[:, n]| / 127, computed independently in float64
    np.testing.assert_allclose(s, np.abs(w).max(axis=0) / 127.0, rtol=1e-6)
    assert q.min() >= -127 and q.max() <= 127
    # the largest element of every column maps to +-127
    assert np.all(np.abs(q).max(axis=0) == 127)
    # reconstruction error at most half a step (plus fp32 rounding)
    err = np.abs(q.astype(np.float64) * s - w)
    assert np.all(err <= s * 0.5 * (1 + 1e-5))


def test_axis_zero_for_conv_weights_and_zero_channel() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 4, 3)).astype(np.float32)
    w[5] = 0.0
    q, s = quantize_per_channel(w, axis=0)
    assert s.shape == (8,)
    assert s[5] == 1.0 and np.all(q[5] == 0)
    np.testing.assert_allclose(s[0], np.abs(w[0]).max() / 127.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8])
def test_rejects_non_float32(dtype: type) -> None:
    with pytest.raises(WeightError, match="dtype"):
        quantize_per_channel(np.ones((4, 4), dtype), axis=1, name="fc1.weight")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rejects_non_finite(bad: float) -> None:
    w = np.ones((4, 4), np.float32)
    w[2, 3] = bad
    with pytest.raises(WeightError, match="fc1.weight.*NaN or infinity"):
        quantize_per_channel(w, axis=1, name="fc1.weight")


def test_rejects_empty_and_bad_axis() -> None:
    with pytest.raises(WeightError, match="empty"):
        quantize_per_channel(np.zeros((0, 4), np.float32), axis=1)
    with pytest.raises(WeightError, match="axis"):
        quantize_per_channel(np.ones((4, 4), np.float32), axis=2)


def test_quantize_constants_keeps_float_roles() -> None:
    w = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    b = np.ones(4, np.float32)
    c = quantize_constants("matmul", {"weight": w, "bias": b}, "mm")
    assert set(c) == {"weight", "w_scale", "bias"}
    assert c["weight"].dtype == np.int8 and c["bias"].dtype == np.float32
    ln = quantize_constants("layernorm", {"gamma": b, "beta": b}, "ln")
    assert set(ln) == {"gamma", "beta"} and ln["gamma"].dtype == np.float32


def test_quantized_region_scale_lookup_names_tensor() -> None:
    qr = QuantizedRegion(3, "static", "minmax", scales={"a": 0.5})
    assert qr.scale("a") == 0.5
    with pytest.raises(KeyError, match="region 3.*'b'"):
        qr.scale("b")


def test_channel_with_a_corrupted_value_is_refused() -> None:
    w = (np.random.default_rng(3).standard_normal((384, 8)) * 0.02).astype(np.float32)
    quantize_per_channel(w, axis=1)  # ordinary weights pass
    spiky = w.copy()
    spiky[7, 5] = 0.02 * 2e4  # > 1e4 x the channel's median |w|
    with pytest.raises(WeightError, match="fc2.weight.*output channel 5.*int8 cannot represent"):
        quantize_per_channel(spiky, axis=1, name="fc2.weight")
    large = w.copy()
    large[7, 5] = 0.02 * 60  # a large but real-looking weight (tiny.en: up to 63 x)
    q, s = quantize_per_channel(large, axis=1)
    assert q[7, 5] == 127

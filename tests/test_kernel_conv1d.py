"""conv1d kernel (Whisper front end): emulator == numpy reference bit for bit
on every CPU path (the GEMM differs per path, the int32 result must not);
ONNX Conv boundary semantics checked against a float64 direct convolution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep.kernel_specs import conv1d as C
from xdna_ep.kernel_specs import registry

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def make(seed: int, b: int, cin: int, t: int, cout: int, kw: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, cin, t)).astype(np.float32)
    w = rng.integers(-127, 128, (cout, cin, kw)).astype(np.int8)
    ws = rng.uniform(1e-3, 2e-2, cout).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    return x, w, ws, bias


def direct_conv(xq: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Textbook ONNX Conv (zero pad both ends), float64, no im2col."""
    b, cin, t = xq.shape
    cout, _, kw = w.shape
    tout = (t + 2 * pad - kw) // stride + 1
    y = np.zeros((b, cout, tout))
    for o in range(tout):
        for k in range(kw):
            p = o * stride + k - pad
            if 0 <= p < t:
                y[:, :, o] += xq[:, :, p] @ w[:, :, k].T.astype(np.float64)
    return y


@SETTINGS
@given(seed=st.integers(0, 2**31), b=st.integers(1, 2), cin=st.integers(1, 40),
       t=st.integers(1, 150), cout=st.integers(1, 70), kw=st.integers(1, 5),
       stride=st.integers(1, 3), pad=st.integers(0, 3), dynamic=st.booleans())
def test_matches_reference(kernel_path: str, seed: int, b: int, cin: int, t: int, cout: int,
                           kw: int, stride: int, pad: int, dynamic: bool) -> None:
    if (t + 2 * pad - kw) < 0:
        t = kw  # keep at least one output position
    x, w, ws, bias = make(seed, b, cin, t, cout, kw)
    si = None if dynamic else 0.02
    y = C.conv1d(x, w, ws, bias, stride=stride, pad=pad, in_scale=si)
    assert y.shape == (b, cout, C.out_length(t, kw, stride, pad)) and y.dtype == np.float32
    np.testing.assert_array_equal(y, C.reference(x, w, ws, bias, stride=stride, pad=pad,
                                                 in_scale=si))


@pytest.mark.parametrize("cin,t,stride", [(80, 3000, 1), (384, 3000, 2)])
def test_whisper_shapes_bit_exact(kernel_path: str, cin: int, t: int, stride: int) -> None:
    x, w, ws, bias = make(1, 1, cin, t, 384, 3)
    y = C.conv1d(x, w, ws, bias, stride=stride, pad=1)
    assert y.shape == (1, 384, 3000 // stride)
    np.testing.assert_array_equal(y, C.reference(x, w, ws, bias, stride=stride, pad=1))


def test_boundaries_follow_onnx_conv() -> None:
    """With inputs already on the int8 grid the only rounding is the fp32
    epilogue: compare with a direct float64 convolution (pads and stride)."""
    rng = np.random.default_rng(4)
    for stride, pad, t in [(1, 1, 9), (2, 1, 9), (2, 1, 10), (3, 2, 7), (1, 0, 3)]:
        xq = rng.integers(-127, 128, (2, 5, t)).astype(np.float32)
        w = rng.integers(-127, 128, (4, 5, 3)).astype(np.int8)
        ws = np.full(4, 0.5, np.float32)
        y = C.conv1d(xq, w, ws, np.zeros(4, np.float32), stride=stride, pad=pad, in_scale=1.0)
        np.testing.assert_array_equal(y, direct_conv(xq, w, stride, pad) * 0.5)


def test_error_bound_vs_float() -> None:
    """README figure: Whisper conv1 shape, Gaussian input, per-channel symmetric
    weights: max abs error <= 3% of max |y| (input quantization dominates)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 80, 600)).astype(np.float32)
    wf = (rng.standard_normal((384, 80, 3)) * 0.05).astype(np.float32)
    ws = (np.abs(wf).reshape(384, -1).max(1) / 127).astype(np.float32)
    w = np.clip(np.rint(wf / ws[:, None, None]), -127, 127).astype(np.int8)
    y = C.conv1d(x, w, ws, None, stride=1, pad=1)
    ref = direct_conv(x.astype(np.float64), wf.astype(np.float64), 1, 1)
    assert np.abs(y - ref).max() / np.abs(ref).max() < 0.03


def test_stage_interface() -> None:
    spec = registry.KERNELS["conv1d"]
    x, w, ws, bias = make(0, 1, 6, 20, 8, 3)
    consts = {"weight": w, "w_scale": ws, "bias": bias}
    for attrs in ({"stride": 2, "pad": 1, "in_scale": 0.03}, {"stride": 1, "pad": 1,
                                                               "dynamic": True}):
        (y,) = spec.run(spec.prepare(consts, attrs), [x], attrs)
        np.testing.assert_array_equal(y, spec.reference(consts, [x], attrs)[0])
    assert spec.macs([x.shape], consts, {"stride": 2, "pad": 1}) == 1 * 8 * 10 * 6 * 3
    dc = spec.device_constants(consts, {})
    assert dc[0].shape == (8, 18) and dc[0].dtype == np.int8


X, W, WS, B = make(0, 1, 4, 10, 3, 3)


@pytest.mark.parametrize("call,match", [
    (lambda: C.conv1d(X.astype(np.float64), W, WS, B), "x must have dtype"),
    (lambda: C.conv1d(X[0], W, WS, B), "x must have 3 dimensions"),
    (lambda: C.conv1d(X, np.ascontiguousarray(W[:, :2]), WS, B), "Cin"),
    (lambda: C.conv1d(X, W.astype(np.int16), WS, B), "weight must have dtype"),
    (lambda: C.conv1d(X, np.full_like(W, -128), WS, B), r"\[-127, 127\]"),
    (lambda: C.conv1d(X, W, WS[:2], B), "w_scale must have shape"),
    (lambda: C.conv1d(X, W, -WS, B), "w_scale must be positive"),
    (lambda: C.conv1d(X, W, WS, B[:1]), "bias must have shape"),
    (lambda: C.conv1d(X, W, WS, B, stride=0), "stride must be >= 1"),
    (lambda: C.conv1d(X, W, WS, B, pad=-1), "pad must be >= 0"),
    (lambda: C.conv1d(X, W, WS, B, in_scale=0.0), "in_scale must be a positive"),
    (lambda: C.conv1d(np.ascontiguousarray(X[:, :, :1]), W, WS, B), "too short"),
    (lambda: C.conv1d(np.zeros((0, 4, 10), np.float32), W, WS, B), "zero-size"),
    (lambda: C.conv1d(np.full((1, 4, 10), np.nan, np.float32), W, WS, B), "Inf or NaN"),
    (lambda: C.conv1d(np.zeros((1, 4, 20), np.float32)[:, :, ::2], W, WS, B), "C-contiguous"),
])
def test_bad_inputs(call, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        call()

"""LayerNorm kernel: emulator == numpy reference bit for bit (every CPU path,
fp32/int8 in, fp32/int8/dynamic-int8 out); statistics are order independent;
error bounds vs float64 LayerNorm as written in kernels/layernorm/README.md."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep.kernel_specs import layernorm as L
from xdna_ep.kernel_specs import registry

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def make(seed: int, rows: int, c: int, int8: bool, spread: float, offset: float):
    rng = np.random.default_rng(seed)
    if int8:
        x = rng.integers(-127, 128, (rows, c)).astype(np.int8)
    else:
        x = (rng.standard_normal((rows, c)) * spread + offset).astype(np.float32)
    gamma = rng.uniform(-2, 2, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    return x, gamma, beta


def float64_layernorm(x: np.ndarray, gamma, beta, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * gamma + beta


@SETTINGS
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 20), c=st.integers(1, 600),
       int8=st.booleans(), out=st.sampled_from(["float32", "int8", "dynamic"]),
       spread=st.floats(1e-6, 1e4), offset=st.floats(-100, 100),
       eps=st.sampled_from([1e-30, 1e-5, 1e-6]), scale=st.floats(1e-3, 1.0))
def test_matches_reference(kernel_path: str, seed: int, rows: int, c: int, int8: bool, out: str,
                           spread: float, offset: float, eps: float, scale: float) -> None:
    x, gamma, beta = make(seed, rows, c, int8, spread, offset)
    kw = {"in_scale": scale if int8 else None, "out": "float32" if out == "float32" else "int8",
          "out_scale": 0.02 if out == "int8" else None}
    got, ref = L.layernorm(x, gamma, beta, eps, **kw), L.reference(x, gamma, beta, eps, **kw)
    if out == "dynamic":
        assert got[1] == ref[1]
        got, ref = got[0], ref[0]
    assert got.dtype == ref.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, ref)


def test_leading_dims_fold_and_whisper_shape(kernel_path: str) -> None:
    x, gamma, beta = make(3, 1500, 384, False, 4.0, 0.5)
    x3 = x.reshape(2, 750, 384)
    y = L.layernorm(x3, gamma, beta)
    assert y.shape == (2, 750, 384)
    np.testing.assert_array_equal(y.reshape(1500, 384), L.layernorm(x, gamma, beta))
    np.testing.assert_array_equal(y, L.reference(x3, gamma, beta))


def test_statistics_are_order_independent() -> None:
    """Permuting a row permutes the output exactly: the integer statistics do not
    depend on summation order (a float accumulator would not guarantee this)."""
    x, gamma, beta = make(5, 8, 512, False, 100.0, 1e3)
    perm = np.random.default_rng(0).permutation(512)
    ones, zeros = np.ones(512, np.float32), np.zeros(512, np.float32)
    a = L.layernorm(x, ones, zeros)[:, perm]
    b = L.layernorm(np.ascontiguousarray(x[:, perm]), ones, zeros)
    np.testing.assert_array_equal(a, b)


def test_constant_rows_zero_rows_and_nonfinite() -> None:
    gamma = np.full(6, 2.0, np.float32)
    beta = np.full(6, 0.5, np.float32)
    x = np.zeros((4, 6), np.float32)
    x[1] = 3.25
    x[2, 1] = np.inf
    x[3, 4] = np.nan
    y = L.layernorm(x, gamma, beta, 1e-5)
    np.testing.assert_array_equal(y[:2], 0.5)  # zero variance: beta
    assert np.isnan(y[2:]).all()
    q = L.layernorm(x, gamma, beta, 1e-5, out="int8", out_scale=0.01)
    np.testing.assert_array_equal(q[:2], 50)
    np.testing.assert_array_equal(q[2:], 0)
    qd, s = L.layernorm(x, gamma, beta, 1e-5, out="int8")
    assert s == np.float32(0.5) / np.float32(127)
    np.testing.assert_array_equal(qd, L.reference(x, gamma, beta, 1e-5, out="int8")[0])


def test_int8_output_saturates() -> None:
    x, gamma, beta = make(9, 4, 64, False, 1.0, 0.0)
    q = L.layernorm(x, gamma * 100, beta, out="int8", out_scale=0.01)
    assert q.max() == 127 and q.min() == -127


@pytest.mark.parametrize("c", [384, 512])
def test_error_bounds_vs_float64(c: int) -> None:
    """README figures (Whisper rows, M=1500): fp32 out max abs error < 2e-6 for
    |y| <= ~8; int8 out within 0.5 LSB (+1e-5) of the float64 result."""
    rng = np.random.default_rng(c)
    x = (rng.standard_normal((1500, c)) * rng.uniform(0.1, 30, (1500, 1))
         + rng.uniform(-3, 3, (1500, 1))).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = (rng.standard_normal(c) * 0.1).astype(np.float32)
    ref = float64_layernorm(x, gamma, beta, 1e-5)
    assert np.abs(L.layernorm(x, gamma, beta, 1e-5) - ref).max() < 2e-6
    so = float(np.abs(ref).max() / 127)
    q = L.layernorm(x, gamma, beta, 1e-5, out="int8", out_scale=so)
    assert np.abs(q - ref / so).max() <= 0.5 + 1e-5
    xi = rng.integers(-127, 128, (1500, c)).astype(np.int8)
    ref_i = float64_layernorm(xi.astype(np.float64) * np.float32(0.05), gamma, beta, 1e-5)
    assert np.abs(L.layernorm(xi, gamma, beta, 1e-5, in_scale=0.05) - ref_i).max() < 2e-6


def test_stage_interface() -> None:
    spec = registry.KERNELS["layernorm"]
    x, gamma, beta = make(1, 10, 32, True, 1, 0)
    consts = {"gamma": gamma, "beta": beta}
    cases = [
        ({"epsilon": 1e-5, "in_scale": 0.1, "out": "int8", "out_scale": 0.05}, [x], 1),
        ({"epsilon": 1e-5, "dynamic": True, "out": "int8"}, [x, np.array([0.1], np.float32)], 2),
        ({"epsilon": 1e-5, "dynamic": True}, [x, np.array([0.1], np.float32)], 1),
        ({"epsilon": 1e-5}, [x.astype(np.float32)], 1),
    ]
    for attrs, inputs, n_out in cases:
        got = spec.run(spec.prepare(consts, attrs), inputs, attrs)
        ref = spec.reference(consts, inputs, attrs)
        assert len(got) == n_out == len(ref)
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(g, r)
    dc = spec.device_constants(consts, {})
    np.testing.assert_array_equal(dc[0], gamma)
    np.testing.assert_array_equal(dc[1], beta)


F = np.zeros((2, 4), np.float32)
ONE = np.ones(4, np.float32)


@pytest.mark.parametrize("call,match", [
    (lambda: L.layernorm(F.astype(np.float64), ONE, ONE), "x must have dtype"),
    (lambda: L.layernorm(np.zeros((4, 8), np.float32)[:, ::2], ONE, ONE), "x must be C-contig"),
    (lambda: L.layernorm(np.zeros((0, 4), np.float32), ONE, ONE), "x must not have a zero-size"),
    (lambda: L.layernorm(F, np.ones(3, np.float32), ONE), "gamma must have shape"),
    (lambda: L.layernorm(F, ONE, np.ones(5, np.float32)), "beta must have shape"),
    (lambda: L.layernorm(F, ONE.astype(np.float16), ONE), "gamma must have dtype"),
    (lambda: L.layernorm(F, ONE, ONE, -1.0), "epsilon must be"),
    (lambda: L.layernorm(F, ONE, ONE, 0.0), "epsilon must be"),
    (lambda: L.layernorm(F, ONE, ONE, float("nan")), "epsilon must be"),
    (lambda: L.layernorm(F.astype(np.int8), ONE, ONE), "in_scale is required"),
    (lambda: L.layernorm(F.astype(np.int8), ONE, ONE, in_scale=0.0), "in_scale must be a pos"),
    (lambda: L.layernorm(F, ONE, ONE, in_scale=0.1), "in_scale must be None"),
    (lambda: L.layernorm(F, ONE, ONE, out="int8", out_scale=float("nan")), "out_scale must be"),
    (lambda: L.layernorm(F, ONE, ONE, out="float16"), "out must be one of"),
    (lambda: L.layernorm(np.zeros((1, 9000), np.float32), np.ones(9000, np.float32),
                         np.ones(9000, np.float32)), "must be <= 8192"),
])
def test_bad_inputs(call, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        call()

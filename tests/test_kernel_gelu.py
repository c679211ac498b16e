"""GELU kernel: emulator == numpy reference bit for bit on every CPU path;
the table equals an independent float64 derivation; error bounds vs float."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep.kernel_specs import gelu as G
from xdna_ep.kernel_specs import registry

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def gelu64(x: float, approximate: str) -> float:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def independent_table(si: float, so: float, approximate: str, off: float = 0.0) -> np.ndarray:
    out = []
    for i in range(256):
        v = round((gelu64((i - 128) * float(np.float32(si)), approximate)
                   - float(np.float32(off))) / float(np.float32(so)))
        out.append(max(-127, min(127, v)))  # Python round(): half to even, like rint
    return np.array(out, dtype=np.int8)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("si,so", [(0.01, 0.01), (0.05, 0.04), (0.1, 0.09), (0.002, 0.003)])
def test_table_matches_independent_formula(si: float, so: float, approximate: str) -> None:
    np.testing.assert_array_equal(G.build_table(si, so, approximate),
                                  independent_table(si, so, approximate))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("si,so,off", [(0.05, 0.02, 2.4), (0.03, 0.015, 1.905), (0.1, 0.1, -0.3)])
def test_table_with_output_offset_matches_independent_formula(si: float, so: float, off: float,
                                                              approximate: str) -> None:
    table = G.build_table(si, so, approximate, off)
    np.testing.assert_array_equal(table, independent_table(si, so, approximate, off))
    assert not np.array_equal(table, G.build_table(si, so, approximate))
    # the stage builds the same bytes from its attrs
    attrs = {"approximate": approximate, "in_scale": si, "out_scale": so, "out_offset": off}
    np.testing.assert_array_equal(G.device_constants({}, attrs)[0], table)


def test_output_offset_must_be_finite() -> None:
    with pytest.raises(ValueError, match="out_offset must be a finite"):
        G.build_table(0.05, 0.02, "none", float("inf"))


def test_tanh_and_erf_tables_differ_somewhere() -> None:
    assert not np.array_equal(G.build_table(0.05, 0.04, "none"), G.build_table(0.05, 0.04, "tanh"))


def shapes() -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple)


@SETTINGS
@given(shape=shapes(), seed=st.integers(0, 2**31), si=st.floats(1e-3, 0.2),
       so=st.floats(1e-3, 0.2), approximate=st.sampled_from(["none", "tanh"]))
def test_static_matches_reference(kernel_path: str, shape: tuple[int, ...], seed: int, si: float,
                                  so: float, approximate: str) -> None:
    x = np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)
    table = G.build_table(si, so, approximate)
    y = G.gelu(x, table)
    assert y.shape == x.shape and y.dtype == np.int8
    np.testing.assert_array_equal(y, G.reference(x, table))


@SETTINGS
@given(shape=shapes(), seed=st.integers(0, 2**31), si=st.floats(1e-4, 1.0),
       approximate=st.sampled_from(["none", "tanh"]))
def test_dynamic_matches_reference(kernel_path: str, shape: tuple[int, ...], seed: int, si: float,
                                   approximate: str) -> None:
    x = np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)
    y, so = G.gelu_dynamic(x, si, approximate)
    yr, sor = G.reference_dynamic(x, si, approximate)
    assert so == sor
    np.testing.assert_array_equal(y, yr)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("si", [1e-3, 0.02, 0.3])
def test_dynamic_out_scale_formula(si: float, approximate: str) -> None:
    s = float(np.float32(si))
    expect = max(abs(gelu64(127 * s, approximate)), abs(gelu64(-127 * s, approximate))) / 127
    assert G.dynamic_out_scale(si, approximate) == float(np.float32(expect))
    # the dynamic table never saturates at the top of the range
    table = G.build_table(si, G.dynamic_out_scale(si, approximate), approximate)
    assert table[255] == 127


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("qmin,qmax", [(-127, 60), (-30, 127), (-127, -5), (3, 3), (-10, -3)])
def test_dynamic_out_scale_covers_the_codes_present(qmin: int, qmax: int,
                                                    approximate: str) -> None:
    """kernel_version 3: out scale = max |gelu(q s)| over the input's codes qmin..qmax / 127,
    so a lopsided input (tiny.en fc1: -16.5 .. 8.2) gets a finer output step."""
    si = 0.13
    s = float(np.float32(si))
    expect = max(abs(gelu64(q * s, approximate)) for q in range(qmin, qmax + 1)) / 127
    assert G.dynamic_out_scale(si, approximate, qmin, qmax) == float(np.float32(expect))
    x = np.array([qmin, qmax, (qmin + qmax) // 2], np.int8)
    y, so = G.gelu_dynamic(x, si, approximate)
    yr, sor = G.reference_dynamic(x, si, approximate)
    assert so == sor == G.dynamic_out_scale(si, approximate, qmin, qmax)
    np.testing.assert_array_equal(y, yr)
    if qmax * s > 0.5:  # the largest output uses the top code
        assert np.abs(y).max() == 127
    if qmin == -127 and qmax == 60:
        assert so < 0.6 * G.dynamic_out_scale(si, approximate)  # finer than the v2 rule
    with pytest.raises(ValueError, match="qmin"):
        G.dynamic_out_scale(si, approximate, 5, 4)


def test_saturation_and_narrow_range() -> None:
    table = G.build_table(0.1, 0.001)  # gelu(12.7) / 0.001 >> 127
    assert table[255] == 127 and table.min() >= -127
    x = np.array([127, 100, 0, -127], dtype=np.int8)
    np.testing.assert_array_equal(G.gelu(x, table), [127, 127, 0, table[1]])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_error_bound_vs_float(approximate: str) -> None:
    """README figures: <= 0.5 LSB vs gelu(dequantized input); <= 1.15 LSB vs
    gelu of the float input before quantization (input rounding included)."""
    rng = np.random.default_rng(7)
    for si in (0.002, 0.03, 0.1):
        so = G.dynamic_out_scale(si, approximate)
        x = rng.uniform(-127 * si, 127 * si, 4000).astype(np.float32)
        q = np.clip(np.rint(x * (np.float32(1) / np.float32(si))), -127, 127).astype(np.int8)
        y = G.gelu(q, G.build_table(si, so, approximate)).astype(np.float64) * so
        f = np.vectorize(lambda v: gelu64(float(v), approximate))
        deq = q.astype(np.float64) * float(np.float32(si))
        assert np.abs(y - f(deq)).max() / so <= 0.5 + 1e-6
        assert np.abs(y - f(x.astype(np.float64))).max() / so <= 1.15


def test_stage_interface_static_and_dynamic() -> None:
    spec = registry.KERNELS["gelu"]
    x = np.arange(-127, 128, dtype=np.int8).reshape(5, 51)
    attrs = {"approximate": "tanh", "in_scale": 0.05, "out_scale": 0.04}
    consts = {"table": G.build_table(0.05, 0.04, "tanh")}
    (y,) = spec.run(spec.prepare(consts, attrs), [x], attrs)
    np.testing.assert_array_equal(y, spec.reference(consts, [x], attrs)[0])
    np.testing.assert_array_equal(spec.device_constants(consts, attrs)[0], consts["table"])
    (y2,) = spec.run(spec.prepare({}, attrs), [x], attrs)  # table from attrs
    np.testing.assert_array_equal(y, y2)
    dattrs = {"approximate": "none", "dynamic": True}
    scale = np.array([0.02], np.float32)
    y, s = spec.run(spec.prepare({}, dattrs), [x, scale], dattrs)
    yr, sr = spec.reference({}, [x, scale], dattrs)
    np.testing.assert_array_equal(y, yr)
    assert s.dtype == np.float32 and s.shape == (1,) and s[0] == sr[0]
    assert spec.device_constants({}, dattrs) == []
    assert spec.macs([x.shape], consts, attrs) == x.size


@pytest.mark.parametrize("bad,match", [
    (lambda t: G.gelu(np.zeros(4, np.int16), t), "x must have dtype int8"),
    (lambda t: G.gelu(np.zeros((4, 4), np.int8)[:, ::2], t), "x must be C-contiguous"),
    (lambda t: G.gelu(np.zeros((0, 3), np.int8), t), "x must not have a zero-size"),
    (lambda t: G.gelu([1, 2], t), "x must be a numpy array"),
    (lambda t: G.gelu(np.zeros(4, np.int8), t[:100]), "table must have shape"),
    (lambda t: G.build_table(0.0, 0.1), "in_scale must be a positive"),
    (lambda t: G.build_table(0.1, float("nan")), "out_scale must be a positive"),
    (lambda t: G.build_table(-1.0, 0.1), "in_scale must be a positive"),
    (lambda t: G.build_table(1e-50, 0.1), "in_scale=.* is not a positive finite float32"),
    (lambda t: G.build_table(0.1, 0.1, "fast"), "approximate must be one of"),
    (lambda t: G.gelu_dynamic(np.zeros(3, np.int8), float("inf")), "in_scale must be a positive"),
])
def test_bad_inputs(bad, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        bad(G.build_table(0.05, 0.05))


def test_stage_bad_scale_buffer() -> None:
    spec = registry.KERNELS["gelu"]
    attrs = {"dynamic": True}
    state = spec.prepare({}, attrs)
    with pytest.raises(ValueError, match="x_scale"):
        spec.run(state, [np.zeros(3, np.int8), np.array([0.0], np.float32)], attrs)
    with pytest.raises(ValueError, match="expected 2 input"):
        spec.run(state, [np.zeros(3, np.int8)], attrs)

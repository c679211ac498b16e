"""Add kernel: fp32 (IEEE add) and int8 with rescale; emulator == numpy
reference bit for bit on every CPU path; error bound vs exact arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep import _emulator
from xdna_ep.kernel_specs import add as A
from xdna_ep.kernel_specs import registry

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def shapes() -> st.SearchStrategy[tuple[tuple[int, ...], int]]:
    """a's shape and how many trailing dims b keeps (b = suffix of a's shape)."""
    return st.lists(st.integers(1, 30), min_size=1, max_size=3).flatmap(
        lambda s: st.tuples(st.just(tuple(s)), st.integers(1, len(s))))


@SETTINGS
@given(shape=shapes(), seed=st.integers(0, 2**31))
def test_f32_matches_numpy(kernel_path: str, shape, seed: int) -> None:
    a_shape, keep = shape
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(a_shape) * 1e3).astype(np.float32)
    b = rng.standard_normal(a_shape[len(a_shape) - keep:]).astype(np.float32)
    np.testing.assert_array_equal(A.add(a, b), A.reference(a, b))
    np.testing.assert_array_equal(A.add(a, b), a + b)  # IEEE fp32 add, broadcast over leading dims


@SETTINGS
@given(shape=shapes(), seed=st.integers(0, 2**31), sa=st.floats(1e-4, 1.0),
       sb=st.floats(1e-4, 1.0), so=st.one_of(st.none(), st.floats(1e-4, 2.0)))
def test_i8_matches_reference(kernel_path: str, shape, seed: int, sa: float, sb: float,
                              so: float | None) -> None:
    a_shape, keep = shape
    rng = np.random.default_rng(seed)
    a = rng.integers(-127, 128, a_shape).astype(np.int8)
    b = rng.integers(-127, 128, a_shape[len(a_shape) - keep:]).astype(np.int8)
    got = A.add(a, b, a_scale=sa, b_scale=sb, out_scale=so)
    ref = A.reference(a, b, a_scale=sa, b_scale=sb, out_scale=so)
    if so is None:
        assert got[1] == ref[1] == float(np.float32(np.float32(sa) + np.float32(sb)))
        got, ref = got[0], ref[0]
    assert got.dtype == np.int8 and got.shape == a.shape
    np.testing.assert_array_equal(got, ref)


def test_requant_constants_follow_the_shared_epilogue() -> None:
    ma, mb, e = A.requant(0.1, 0.05, 0.2)
    m, shift = _emulator.make_requant(float(np.float32(0.1)) / float(np.float32(0.2)))
    assert (ma, e) == (m, shift)
    assert mb == round(float(np.float32(0.05)) / float(np.float32(0.2)) * 2.0**e)
    ma2, mb2, e2 = A.requant(0.05, 0.1, 0.2)  # symmetric
    assert (ma2, mb2, e2) == (mb, ma, e)


def test_saturation_and_rounding() -> None:
    a = np.array([127, -127, 1, -1, 0], np.int8)
    c = A.add(a, a, a_scale=1.0, b_scale=1.0, out_scale=1.0)
    np.testing.assert_array_equal(c, [127, -127, 2, -2, 0])
    # 0.5 LSB ties round toward +inf (the epilogue's arithmetic shift)
    c = A.add(np.array([1, -1, 3], np.int8), np.zeros(3, np.int8), a_scale=0.5, b_scale=0.5,
              out_scale=1.0)
    np.testing.assert_array_equal(c, [1, 0, 2])


def test_error_bound_vs_exact() -> None:
    """README figure: <= 0.5 LSB (+1e-6) from the exact rescaled sum when unsaturated."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        sa, sb = rng.uniform(1e-3, 0.1, 2)
        so = float((sa + sb) * rng.uniform(0.5, 1.2))
        a = rng.integers(-127, 128, 5000).astype(np.int8)
        b = rng.integers(-127, 128, 5000).astype(np.int8)
        c = A.add(a, b, a_scale=sa, b_scale=sb, out_scale=so).astype(np.float64)
        f = [float(np.float32(v)) for v in (sa, sb, so)]
        exact = (a * f[0] + b * f[1]) / f[2]
        ok = np.abs(exact) < 127
        assert np.abs(c - exact)[ok].max() <= 0.5 + 1e-6


def test_stage_interface() -> None:
    spec = registry.KERNELS["add"]
    rng = np.random.default_rng(0)
    a = rng.integers(-127, 128, (4, 6)).astype(np.int8)
    b = rng.integers(-127, 128, (4, 6)).astype(np.int8)
    sa, sb = np.array([0.1], np.float32), np.array([0.2], np.float32)
    cases = [
        ({"a_scale": 0.1, "b_scale": 0.2, "out_scale": 0.25}, [a, b], 1),
        ({"dynamic": True}, [a, sa, b, sb], 2),
        ({}, [a.astype(np.float32), b.astype(np.float32)], 1),
    ]
    for attrs, inputs, n_out in cases:
        got = spec.run(spec.prepare({}, attrs), inputs, attrs)
        ref = spec.reference({}, inputs, attrs)
        assert len(got) == len(ref) == n_out
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(g, r)
    consts = spec.device_constants({}, cases[0][0])
    np.testing.assert_array_equal(consts[0], A.requant(0.1, 0.2, 0.25))


I8 = np.zeros((2, 3), np.int8)
F32 = np.zeros((2, 3), np.float32)


@pytest.mark.parametrize("call,match", [
    (lambda: A.add(F32, I8), "same dtype"),
    (lambda: A.add(F32.astype(np.float64), F32), "a must have dtype"),
    (lambda: A.add(F32, np.zeros(4, np.float32)), "suffix"),
    (lambda: A.add(F32, np.zeros((3, 2, 3), np.float32)), "suffix"),
    (lambda: A.add(np.zeros((2, 6), np.float32)[:, ::2], F32), "a must be C-contiguous"),
    (lambda: A.add(np.zeros((0, 3), np.float32), F32[0]), "a must not have a zero-size"),
    (lambda: A.add(I8, I8), "a_scale and b_scale are required"),
    (lambda: A.add(I8, I8, a_scale=0.1, b_scale=-1.0), "b_scale must be a positive"),
    (lambda: A.add(I8, I8, a_scale=float("nan"), b_scale=1.0), "a_scale must be a positive"),
    (lambda: A.add(I8, I8, a_scale=0.1, b_scale=0.1, out_scale=0.0), "out_scale must be"),
    (lambda: A.add(F32, F32, a_scale=0.1), "scales must be None"),
])
def test_bad_inputs(call, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_position_add_stage_constant_table_and_transposed_a() -> None:
    """The front end's position add: a [B, D, T] transposed, plus a constant [T, D]
    table that reaches the device padded to whole 32-row tiles."""
    spec = registry.get("add")
    rng = np.random.default_rng(5)
    b, d, t = 2, 8, 45
    a = rng.standard_normal((b, d, t)).astype(np.float32)
    table = rng.standard_normal((t, d)).astype(np.float32)
    attrs = {"transpose_a": True, "table_rows": t}
    blobs = spec.device_constants({"b": table}, attrs)
    assert len(blobs) == 1 and blobs[0].shape == (64, d) and blobs[0].dtype == np.float32
    assert np.array_equal(blobs[0][:t], table) and not blobs[0][t:].any()
    state = spec.prepare({"b": table}, attrs)
    (y,) = spec.run(state, [a], attrs)
    want = a.transpose(0, 2, 1) + table
    assert y.shape == (b, t, d) and y.tobytes() == want.astype(np.float32).tobytes()
    (ref,) = spec.reference({"b": table}, [a], attrs)
    assert ref.tobytes() == y.tobytes()
    # the table is shorter than the sequence: a clear error, not a silent broadcast
    short = {"transpose_a": True, "table_rows": 40}
    with pytest.raises(ValueError, match="suffix"):
        spec.run(spec.prepare({"b": table[:40]}, short), [a], short)
    with pytest.raises(ValueError, match="table_rows"):
        spec.device_constants({"b": table[:40]}, attrs)
    with pytest.raises(ValueError, match="fewer than"):
        spec.prepare_device([table[:40]], attrs)
    # a constant b is a float32-only form
    with pytest.raises(ValueError, match="float32 adds only"):
        spec.device_constants({"b": table}, {"a_scale": 0.1, "b_scale": 0.1, "out_scale": 0.2})

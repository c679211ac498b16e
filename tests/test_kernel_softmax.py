"""Softmax kernel: emulator == numpy integer reference bit for bit on every CPU
path (random shapes, masks incl. -inf/NaN/huge values, causal + past_len);
constants equal an independent derivation; error bound vs float softmax;
clear errors on bad input."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdna_ep import _emulator
from xdna_ep.kernel_specs import registry
from xdna_ep.kernel_specs import softmax as S

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_exp_table_and_constants_match_independent_derivation() -> None:
    # 2^(24 - f/256) by repeated square roots of 2 in float64, independent of numpy's power
    root = 2.0 ** (1.0 / 256.0)
    expect = [round(2.0**24 / root**f) for f in range(256)]
    np.testing.assert_array_equal(S.EXP_TABLE, expect)
    np.testing.assert_array_equal(_emulator.softmax_exp_table().astype(np.int64), S.EXP_TABLE)
    c = _emulator.softmax_constants()
    assert c["mask_to_fixed"] == float(np.float32(256 * math.log2(math.e)))
    assert c["mask_to_fixed"] == float(S.MASK_TO_FIXED)
    assert (c["frac_bits"], c["exp_one"], c["max_shift"], c["recip_extra_bits"]) == (
        S.FRAC_BITS, S.EXP_ONE, S.MAX_SHIFT, S.RECIP_EXTRA_BITS)
    assert (c["logit_limit"], c["excluded_logit"]) == (S.LOGIT_LIMIT, S.EXCLUDED_LOGIT)
    assert (c["mask_exclude"], c["mask_limit"]) == (float(S.MASK_EXCLUDE), float(S.MASK_LIMIT))


def _mask_for(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random mask of a random broadcastable shape with -inf, NaN and huge values."""
    start = int(rng.integers(0, len(shape)))
    mshape = tuple(d if rng.random() < 0.6 else 1 for d in shape[start:])
    m = (rng.normal(size=mshape) * 4).astype(np.float32)
    special = rng.random(mshape)
    m[special < 0.1] = -np.inf
    m[(special >= 0.1) & (special < 0.15)] = np.nan
    m[(special >= 0.15) & (special < 0.2)] = np.finfo(np.float32).min
    m[(special >= 0.2) & (special < 0.23)] = 3.0e4  # clamped to +1e4
    m[(special >= 0.23) & (special < 0.26)] = -9999.0  # just above the exclusion threshold
    return m


@SETTINGS
@given(shape=st.lists(st.integers(1, 24), min_size=1, max_size=4).map(tuple),
       seed=st.integers(0, 2**31), in_scale=st.floats(1e-3, 2.0), scale=st.floats(0.05, 4.0),
       use_mask=st.booleans(), causal=st.booleans(),
       past_len=st.one_of(st.none(), st.integers(0, 30)))
def test_emulator_matches_reference(kernel_path: str, shape: tuple[int, ...], seed: int,
                                    in_scale: float, scale: float, use_mask: bool, causal: bool,
                                    past_len: int | None) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    mask = _mask_for(rng, shape) if use_mask else None
    kw = dict(mask=mask, causal=causal, past_len=past_len)
    p = S.softmax(x, in_scale, scale, **kw)
    assert p.shape == x.shape and p.dtype == np.int8
    np.testing.assert_array_equal(p, S.softmax_reference(x, in_scale, scale, **kw))
    assert p.min() >= 0 and p.max() <= 127


def test_long_rows_match_reference(kernel_path: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-127, 128, (6, 1500)).astype(np.int8)
    for in_scale in (0.002, 0.05, 0.5):
        np.testing.assert_array_equal(S.softmax(x, in_scale), S.softmax_reference(x, in_scale))


def test_saturated_logits_one_hot(kernel_path: str) -> None:
    # logits 127*2 apart: the maximum takes all the mass, the rest underflow to 0
    x = np.array([[127, -127, -127, -127], [-127, 127, 127, -127]], dtype=np.int8)
    p = S.softmax(x, 1.0)
    np.testing.assert_array_equal(p, [[127, 0, 0, 0], [0, 64, 64, 0]])  # 63.5 rounds half up


def test_uniform_row_and_shift_invariance(kernel_path: str) -> None:
    x = np.full((3, 5), 7, dtype=np.int8)
    p = S.softmax(x, 0.1)
    np.testing.assert_array_equal(p, np.full((3, 5), round(127 / 5)))
    # adding a constant to every logit (via the mask) changes nothing
    m = np.full((1, 5), 3.25, dtype=np.float32)
    y = np.random.default_rng(1).integers(-127, 128, (3, 5)).astype(np.int8)
    np.testing.assert_array_equal(S.softmax(y, 0.125, mask=m), S.softmax(y, 0.125))


def test_causal_semantics(kernel_path: str) -> None:
    x = np.zeros((4, 6), dtype=np.int8)
    p = S.softmax(x, 0.1, causal=True, past_len=1)  # row i sees j <= i + 1
    for i in range(4):
        assert (p[i, : i + 2] > 0).all() and (p[i, i + 2:] == 0).all()
    # default past_len = n - rows = 2 (queries are the last rows of the key range)
    np.testing.assert_array_equal(S.softmax(x, 0.1, causal=True),
                                  S.softmax(x, 0.1, causal=True, past_len=2))
    # causal row index is the second-to-last axis, repeated over leading dims
    x3 = np.zeros((2, 4, 6), dtype=np.int8)
    p3 = S.softmax(x3, 0.1, causal=True, past_len=1)
    np.testing.assert_array_equal(p3[0], p)
    np.testing.assert_array_equal(p3[1], p)


def test_mask_row_offsets_are_numpys_broadcast_view() -> None:
    """The per-row mask offsets of the kernel library (emulator/mask_host.h; the
    emulator wrapper and the plugin's softmax stage both use them) address the
    same elements as numpy's broadcast view, for every broadcast pattern."""
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(300):
        shape = tuple(int(d) for d in rng.integers(1, 5, rng.integers(1, 5)))
        keep = int(rng.integers(1, len(shape) + 1))
        mshape = tuple(1 if rng.random() < 0.4 else d for d in shape[len(shape) - keep:])
        mask = rng.standard_normal(mshape).astype(np.float32)
        offsets, col = _emulator.softmax_mask_rows(list(mshape), list(shape))
        assert offsets.dtype == np.int64 and col in (0, 1)
        rows = np.broadcast_to(mask, shape).reshape(-1, shape[-1])
        assert len(offsets) == rows.shape[0]
        flat = mask.reshape(-1)
        cols = np.arange(shape[-1]) * col
        np.testing.assert_array_equal(flat[offsets[:, None] + cols[None, :]], rows)
        checked += 1
    assert checked == 300
    with pytest.raises(ValueError, match="does not broadcast"):
        _emulator.softmax_mask_rows([3, 5], [4, 5])
    with pytest.raises(ValueError, match="does not broadcast"):
        _emulator.softmax_mask_rows([2, 4, 5], [4, 5])


def test_all_masked_rows_are_zero(kernel_path: str) -> None:
    x = np.random.default_rng(2).integers(-127, 128, (3, 8)).astype(np.int8)
    mask = np.zeros((3, 8), dtype=np.float32)
    mask[1] = -np.inf
    mask[2] = np.nan
    mask[0, :7] = np.finfo(np.float32).min
    p = S.softmax(x, 0.1, mask=mask)
    np.testing.assert_array_equal(p[1:], 0)
    np.testing.assert_array_equal(p[0], [0] * 7 + [127])


def test_error_bound_vs_float(kernel_path: str) -> None:
    """README figure: max |p/127 - p_float| <= 0.51/127 (half an output step + fixed-point)."""
    rng = np.random.default_rng(3)
    x = rng.integers(-127, 128, (64, 384)).astype(np.int8)
    mask = _mask_for(rng, (64, 384))
    for in_scale in (0.005, 0.03, 0.1):
        p = S.softmax(x, in_scale, mask=mask, causal=True)
        f = S.softmax_float_reference(x, in_scale, mask=mask, causal=True)
        err = np.abs(p / 127.0 - f).max() * 127
        assert err <= 0.51, err


def test_registry_stage_static_and_dynamic(kernel_path: str) -> None:
    spec = registry.get("softmax")
    rng = np.random.default_rng(4)
    x = rng.integers(-127, 128, (2, 5, 7)).astype(np.int8)
    mask = rng.normal(size=(5, 7)).astype(np.float32)
    attrs = {"in_scale": 0.05, "scale": 0.5, "causal": True, "past_len": 2, "has_mask": True}
    state = spec.prepare({}, attrs)
    out = spec.run(state, [x, mask], attrs)
    np.testing.assert_array_equal(out[0], spec.reference({}, [x, mask], attrs)[0])
    np.testing.assert_array_equal(
        out[0], S.softmax(x, 0.05, 0.5, mask=mask, causal=True, past_len=2))
    dyn = {"dynamic": True, "scale": 0.5}
    sc = np.array([0.05], dtype=np.float32)
    o = spec.run(spec.prepare({}, dyn), [x, sc], dyn)
    assert len(o) == 2 and o[1].dtype == np.float32 and o[1][0] == np.float32(1 / 127)
    np.testing.assert_array_equal(o[0], spec.reference({}, [x, sc], dyn)[0])
    np.testing.assert_array_equal(o[0], S.softmax(x, float(sc[0]), 0.5))
    assert spec.macs([x.shape], {}, attrs) == x.size


@pytest.mark.parametrize("bad,exc,match", [
    (dict(x=np.zeros((2, 3), np.int16)), TypeError, "x must have dtype int8"),
    (dict(x=np.zeros((4, 6), np.int8)[:, ::2]), ValueError, "x must be C-contiguous"),
    (dict(x=np.zeros((0, 3), np.int8)), ValueError, "x must not have a zero-size"),
    (dict(x=[1, 2, 3]), TypeError, "x must be a numpy array"),
    (dict(in_scale=0.0), ValueError, "in_scale"),
    (dict(in_scale=float("nan")), ValueError, "in_scale"),
    (dict(scale=-1.0), ValueError, "scale"),
    (dict(in_scale=1e12), ValueError, "too large"),
    (dict(mask=np.zeros((2, 4), np.float32)), ValueError, "mask shape"),
    (dict(mask=np.zeros((2, 3), np.float64)), TypeError, "mask must have dtype float32"),
    (dict(mask=np.zeros((1, 2, 3), np.float32)), ValueError, "more dims"),
    (dict(causal=True, past_len=-1), ValueError, "past_len"),
    (dict(causal=True, past_len=1.5), TypeError, "past_len"),
])
def test_bad_inputs(bad: dict, exc: type, match: str) -> None:
    kw = dict(x=np.zeros((2, 3), np.int8), in_scale=0.1)
    kw.update(bad)
    x, in_scale = kw.pop("x"), kw.pop("in_scale")
    with pytest.raises(exc, match=match):
        S.softmax(x, in_scale, **kw)


def test_bad_stage_inputs() -> None:
    spec = registry.get("softmax")
    attrs = {"in_scale": 0.1, "has_mask": True}
    with pytest.raises(ValueError, match="expects 2 inputs"):
        spec.run(spec.prepare({}, attrs), [np.zeros((2, 3), np.int8)], attrs)
    with pytest.raises(ValueError, match="in_scale"):
        spec.prepare({}, {})
    dyn = {"dynamic": True}
    with pytest.raises(ValueError, match="x_scale must hold one value"):
        spec.run(spec.prepare({}, dyn), [np.zeros((2, 3), np.int8), np.ones(2, np.float32)], dyn)


# --- the AIE core source, run on the host through the design's block schedule --
KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def test_aie_core_source_matches_emulator(tmp_path: Path) -> None:
    """aie/softmax_aie.cc, compiled with the scalar aie_api stand-in
    (kernels/attention/aie/host_stub), gives the emulator's bytes block by block."""
    cxx = shutil.which(sysconfig.get_config_var("CXX") or "") or shutil.which("c++")
    assert cxx, "a C++ compiler is needed (it also builds xdna_ep._emulator)"
    so = tmp_path / "softmax_aie.so"
    subprocess.run([cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-I",
                    str(KERNELS / "attention" / "aie" / "host_stub"), "-o", str(so),
                    str(KERNELS / "softmax" / "aie" / "softmax_aie.cc")], check=True)
    lib = ctypes.CDLL(str(so))

    def ptr(a: np.ndarray) -> ctypes.c_void_p:
        return a.ctypes.data_as(ctypes.c_void_p)

    rng = np.random.default_rng(31)
    for trial in range(10):
        tq, n, lead = int(rng.integers(1, 40)), int(rng.integers(1, 300)), int(rng.integers(1, 4))
        x = rng.integers(-128, 128, (lead, tq, n)).astype(np.int8)
        mask = _mask_for(rng, (tq, n)) if trial % 3 == 0 else None
        c = S.prepare_call(x, 0.05, 0.7, mask=mask, causal=bool(trial % 2),
                           past_len=int(rng.integers(0, 4)))
        par = np.array([c.logit_mult, c.logit_shift, int(c.causal), c.query_len, c.past_len,
                        0, 0, 0], np.int32)
        rows = lead * tq
        xf = x.reshape(rows, n)
        mfull = None if mask is None else np.ascontiguousarray(
            np.broadcast_to(mask, x.shape).reshape(rows, n))
        out = np.zeros_like(xf)
        rpb = max(1, 4096 // n)  # design.py rows_per_block (any block size gives the same rows)
        for r0 in range(0, rows, rpb):
            nr = min(rpb, rows - r0)
            xb = np.ascontiguousarray(xf[r0:r0 + nr])
            pb = np.zeros_like(xb)
            idx = np.array([r0], np.int32)
            if mfull is None:
                lib.xdna_softmax_i8(ptr(xb), ptr(pb), ptr(par), ptr(idx), nr, n)
            else:
                mb = np.ascontiguousarray(mfull[r0:r0 + nr])
                lib.xdna_softmax_i8_masked(ptr(xb), ptr(mb), ptr(pb), ptr(par), ptr(idx), nr, n)
            out[r0:r0 + nr] = pb
        np.testing.assert_array_equal(out.reshape(x.shape), S.run_call(c))

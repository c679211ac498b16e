"""quantize / dequantize kernels: emulator == numpy reference bit for bit,
rounding and saturation rules, error bound, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xdna_ep import _emulator
from xdna_ep.kernel_specs import quantize as qz
from xdna_ep.kernel_specs import registry

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40)
# static quantize accepts +-inf (saturates); dynamic needs a finite max|x|
FLOATS = hnp.arrays(np.float32, SHAPES, elements=st.floats(allow_nan=False, width=32))
FINITE = hnp.arrays(np.float32, SHAPES,
                    elements=st.floats(allow_nan=False, allow_infinity=False, width=32))


def _stage(name: str, inputs: list, attrs: dict) -> tuple[list, list]:
    spec = registry.get(name)
    got = spec.run(spec.prepare({}, attrs), inputs, attrs)
    want = spec.reference({}, inputs, attrs)
    return got, want


def _same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes()


@SETTINGS
@given(x=FLOATS, scale=st.floats(1e-30, 1e30))
def test_quantize_static_bit_exact(kernel_path: str, x: np.ndarray, scale: float) -> None:
    _same(*_stage("quantize", [x], {"out_scale": scale}))


@SETTINGS
@given(x=FINITE)
def test_quantize_dynamic_bit_exact(kernel_path: str, x: np.ndarray) -> None:
    got, want = _stage("quantize", [x], {"dynamic": True})
    _same(got, want)
    assert got[1].shape == (1,)


@SETTINGS
@given(x=FINITE, neg_limit=st.sampled_from([1e-3, 0.5, 4.0, 1e3]))
def test_quantize_dynamic_neg_limit_bit_exact(kernel_path: str, x: np.ndarray,
                                              neg_limit: float) -> None:
    """A GELU input's dynamic scale (attrs neg_limit): emulator == reference, and the
    range is min(max|x|, max(max x, L)) as STAGES.md states."""
    got, want = _stage("quantize", [x], {"dynamic": True, "neg_limit": neg_limit})
    _same(got, want)
    m = min(np.float32(np.abs(x).max()), max(np.float32(x.max()), np.float32(neg_limit)))
    assert got[1][0] == qz.dynamic_scale_reference(np.array([m], np.float32))


def test_neg_limit_caps_only_the_negative_side() -> None:
    x = np.array([-16.5, -3.0, 0.0, 8.2], np.float32)  # tiny.en fc1's lopsided range
    q, s = qz.quantize_dynamic(x, 4.0)
    assert s == np.float32(np.float32(8.2) / np.float32(127)) and q[0] == -127 and q[-1] == 127
    _, s = qz.quantize_dynamic(np.array([-16.5, 1.0], np.float32), 4.0)  # max x < L: L
    assert s == np.float32(np.float32(4.0) / np.float32(127))
    _, s = qz.quantize_dynamic(np.array([-2.0, 1.0], np.float32), 4.0)  # max|x| < L: max|x|
    assert s == np.float32(np.float32(2.0) / np.float32(127))
    _, s = qz.quantize_dynamic(np.array([-16.5, 30.0], np.float32), 4.0)  # positive wider
    assert s == np.float32(np.float32(30.0) / np.float32(127))
    with pytest.raises(ValueError, match="neg_limit"):
        qz.quantize_dynamic(x, -1.0)
    with pytest.raises(ValueError, match="neg_limit"):
        registry.get("quantize").prepare({}, {"out_scale": 0.1, "neg_limit": 4.0})


@SETTINGS
@given(q=hnp.arrays(np.int8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40)),
       scale=st.floats(1e-30, 1e30), dynamic=st.booleans())
def test_dequantize_bit_exact(kernel_path: str, q: np.ndarray, scale: float,
                              dynamic: bool) -> None:
    if dynamic:
        _same(*_stage("dequantize", [q, np.array([scale], np.float32)], {"dynamic": True}))
    else:
        _same(*_stage("dequantize", [q], {"in_scale": scale}))


def test_large_tensor_uses_threads_and_matches() -> None:
    x = np.random.default_rng(0).normal(0, 3, (1500, 384)).astype(np.float32)
    q, s = qz.quantize_dynamic(x)
    assert s == qz.dynamic_scale_reference(x)
    assert q.tobytes() == qz.quantize_reference(x, s).tobytes()
    assert qz.dequantize(q, s).tobytes() == qz.dequantize_reference(q, s).tobytes()


def test_round_half_to_even_and_saturation() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 126.5, 127.5, 300.0, -1e9, np.inf, -np.inf],
                 np.float32)
    assert qz.quantize(x, 1.0).tolist() == [0, 2, 2, 0, -2, 126, 127, 127, -127, 127, -127]


def test_dynamic_scale_rules() -> None:
    _, s = qz.quantize_dynamic(np.zeros((3, 3), np.float32))
    assert s == np.float32(1.0)
    # max|x|/127 is a float32 denormal whose reciprocal overflows: scale 1.0
    _, s = qz.quantize_dynamic(np.array([1e-40, -2e-40], np.float32))
    assert s == np.float32(1.0)
    q, s = qz.quantize_dynamic(np.array([-2.54, 1.0], np.float32))
    assert s == np.float32(np.float32(2.54) / np.float32(127)) and q[0] == -127


def test_round_trip_error_bound() -> None:
    """|dequantize(quantize(x)) - x| <= scale/2 (plus float32 rounding) for in-range x."""
    x = np.random.default_rng(1).uniform(-5, 5, 10000).astype(np.float32)
    q, s = qz.quantize_dynamic(x)
    err = np.abs(qz.dequantize(q, s) - x)
    assert err.max() <= s / 2 * (1 + 1e-5)


@pytest.mark.parametrize("call, exc, name", [
    (lambda: qz.quantize(np.ones(3, np.float64), 1.0), TypeError, "x"),
    (lambda: qz.quantize(np.ones((4, 4), np.float32)[:, ::2], 1.0), ValueError, "x"),
    (lambda: qz.quantize(np.ones((0, 4), np.float32), 1.0), ValueError, "x"),
    (lambda: qz.quantize(np.ones(3, np.float32), 0.0), ValueError, "scale"),
    (lambda: qz.quantize(np.ones(3, np.float32), -1.0), ValueError, "scale"),
    (lambda: qz.quantize(np.ones(3, np.float32), float("nan")), ValueError, "scale"),
    (lambda: qz.quantize(np.ones(3, np.float32), 1e-45), ValueError, "scale"),
    (lambda: qz.quantize(np.ones(3, np.float32), "1"), TypeError, "scale"),
    (lambda: qz.quantize(np.array([1.0, np.nan], np.float32), 1.0), ValueError, "NaN"),
    (lambda: qz.quantize_dynamic(np.array([1.0, np.inf], np.float32)), ValueError, "inf"),
    (lambda: qz.quantize_dynamic([1.0]), TypeError, "x"),
    (lambda: qz.dequantize(np.ones(3, np.int16), 1.0), TypeError, "q"),
    (lambda: qz.dequantize(np.ones(3, np.int8), float("inf")), ValueError, "scale"),
])
def test_bad_input(call, exc: type, name: str) -> None:
    with pytest.raises(exc, match=name):
        call()


def test_bad_stage_input() -> None:
    spec = registry.get("quantize")
    with pytest.raises(ValueError, match="out_scale"):
        spec.prepare({}, {})
    with pytest.raises(ValueError, match="input"):
        spec.run(spec.prepare({}, {"out_scale": 1.0}), [], {"out_scale": 1.0})
    dq = registry.get("dequantize")
    with pytest.raises(ValueError, match="q_scale"):
        dq.run(None, [np.ones(2, np.int8), np.zeros(1, np.float32)], {"dynamic": True})


def test_native_bindings_reject_bad_arrays() -> None:
    with pytest.raises(TypeError, match="x"):
        _emulator.quantize(np.ones(3, np.float64), 1.0)
    with pytest.raises(ValueError, match="scale"):
        _emulator.dequantize(np.ones(3, np.int8), 0.0)
    with pytest.raises(ValueError, match="contiguous"):
        _emulator.quantize_dynamic(np.ones((4, 4), np.float32)[::2])

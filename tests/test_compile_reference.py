"""compile/reference.py (the contract-level stage versions used when a kernel, or a
contract extension such as the split matmul, is not registered) against the registered
kernels: integer stages agree exactly, float-math stages within one int8 step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xdna_ep.compile.execute import registered_kernel
from xdna_ep.compile.kernel_api import gelu_table
from xdna_ep.compile.reference import REFERENCES

RNG = np.random.default_rng(5)


def _i8(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(-127, 128, shape).astype(np.int8)


def _cases() -> list[tuple[str, dict[str, np.ndarray], list[np.ndarray], dict[str, Any], int]]:
    """(kernel, consts, inputs, attrs, max allowed |difference| in output units)."""
    x = (RNG.standard_normal((3, 50, 64)) * 2).astype(np.float32)
    w = _i8((64, 48))
    ws = (RNG.random(48) * 0.01 + 1e-3).astype(np.float32)
    b = RNG.standard_normal(48).astype(np.float32)
    a = _i8((3, 50, 64))
    cw = _i8((16, 8, 3))
    cs = (RNG.random(16) * 0.01 + 1e-3).astype(np.float32)
    cb = RNG.standard_normal(16).astype(np.float32)
    g = (1 + 0.1 * RNG.standard_normal(64)).astype(np.float32)
    be = (0.1 * RNG.standard_normal(64)).astype(np.float32)
    return [
        ("quantize", {}, [x], {"out_scale": 0.05}, 0),
        ("quantize", {}, [x], {"dynamic": True}, 0),
        ("dequantize", {}, [a], {"in_scale": 0.05}, 0),
        ("matmul", {"weight": w, "w_scale": ws, "bias": b}, [a],
         {"out": "float32", "in_scale": 0.04}, 0),
        ("matmul", {"weight": w, "w_scale": ws, "bias": b}, [a],
         {"out": "int8", "in_scale": 0.04, "out_scale": 0.3}, 1),
        ("matmul", {"weight": w, "w_scale": ws}, [a, np.array([0.04], np.float32)],
         {"out": "float32", "dynamic": True}, 0),
        ("gelu", {"table": gelu_table(0.05, 0.04, "none")}, [a],
         {"approximate": "none", "in_scale": 0.05, "out_scale": 0.04}, 0),
        ("gelu", {}, [a, np.array([0.05], np.float32)], {"approximate": "tanh", "dynamic": True},
         1),
        ("layernorm", {"gamma": g, "beta": be}, [x], {"epsilon": 1e-5, "out": "int8",
                                                     "out_scale": 0.03}, 1),
        ("layernorm", {"gamma": g, "beta": be}, [a], {"epsilon": 1e-5, "out": "float32",
                                                     "in_scale": 0.05}, 1),
        ("attention", {}, [_i8((1, 40, 64)), _i8((1, 40, 64)), _i8((1, 40, 64))],
         {"num_heads": 4, "softmax_scale": 0.25, "causal": False, "has_mask": False,
          "out": "int8", "q_scale": 0.02, "k_scale": 0.02, "v_scale": 0.03, "out_scale": 0.03},
         2),
        ("add", {}, [x, x * 2], {}, 0),
        ("conv1d", {"weight": cw, "w_scale": cs, "bias": cb},
         [RNG.standard_normal((2, 8, 30)).astype(np.float32)],
         {"stride": 2, "pad": 1, "in_scale": 0.03, "out": "float32"}, 0),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c[0]}-{sorted(c[3])}")
def test_contract_reference_matches_registered_kernel(case) -> None:  # type: ignore[no-untyped-def]
    kernel, consts, inputs, attrs, tol = case
    spec = registered_kernel(kernel)
    assert spec is not None, f"kernel {kernel!r} is not registered"
    want = spec.reference(consts, inputs, dict(attrs))
    got = REFERENCES[kernel](consts, inputs, dict(attrs))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype == np.int8:
            assert np.max(np.abs(g.astype(np.int32) - w.astype(np.int32))) <= tol
            # float-math kernels (softmax inside attention) round a few codes differently
            assert np.mean(g == w) >= (0.95 if kernel == "attention" else 0.99)
        elif tol == 0:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_split_matmul_equals_column_blocks() -> None:
    """The split-output extension equals three separate matmuls on the weight blocks."""
    a = _i8((20, 32))
    w = _i8((32, 30))
    ws = (RNG.random(30) * 0.01 + 1e-3).astype(np.float32)
    b = RNG.standard_normal(30).astype(np.float32)
    split = [10, 12, 8]
    scales = [0.2, 0.3, 0.25]
    got = REFERENCES["matmul"]({"weight": w, "w_scale": ws, "bias": b}, [a],
                               {"out": "int8", "in_scale": 0.05, "split": split,
                                "out_scales": scales})
    c0 = 0
    for n, s, g in zip(split, scales, got, strict=True):
        part = REFERENCES["matmul"]({"weight": np.ascontiguousarray(w[:, c0:c0 + n]),
                                     "w_scale": ws[c0:c0 + n], "bias": b[c0:c0 + n]}, [a],
                                    {"out": "int8", "in_scale": 0.05, "out_scale": s})[0]
        np.testing.assert_array_equal(g, part)
        c0 += n

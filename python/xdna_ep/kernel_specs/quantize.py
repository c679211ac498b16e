"""quantize / dequantize: the float32 <-> int8 boundary kernels.

Contract (kernels/quantize/README.md, kernels/quantize/quantize.h):
    quantize:   q = clip(rint(x * inv), -127, 127), inv = float32(1) / float32(scale)
    dynamic:    scale = max|x| / 127 in float32 (1.0 when 0 or when 1/scale overflows)
    dynamic, attrs neg_limit = L > 0 (a GELU input; kernel_version 2):
                max|x| is first capped at max(max x, L) (the negative side saturates
                where GELU is ~0 anyway)
    dequantize: x = float32(q) * float32(scale)
NaN has no int8 image and is rejected (ValueError); +-inf saturates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import checks as v
from .registry import Arrays, Attrs, BufferSpec, Consts, KernelSpec, register

_F32_ONE = np.float32(1.0)
_F32_127 = np.float32(127.0)


# ---------------------------------------------------------------- public API
def quantize(x: np.ndarray, scale: float) -> np.ndarray:
    """float32 -> int8 with a static per-tensor scale (emulator kernel)."""
    x = v.array("x", x, np.float32)
    s = v.quantize_scale("scale", scale)
    return _emu.quantize(x, float(s))


def quantize_dynamic(x: np.ndarray, neg_limit: float = 0.0) -> tuple[np.ndarray, np.float32]:
    """float32 -> (int8, scale) with scale = max|x|/127 (emulator kernel); neg_limit > 0:
    max|x| capped at max(max x, neg_limit) first (gelu_input_range)."""
    x = v.array("x", x, np.float32)
    q, s = _emu.quantize_dynamic(x, _neg_limit(neg_limit))
    return q, np.float32(s)


def dynamic_scale_partial(x: np.ndarray) -> np.ndarray:
    """One producer core's partial of an on-device dynamic scale over x: float32[4]
    {max|x|, max x, non-finite flag (0/1), 0} (kernels/common/dynamic_scale.h fold,
    the host build of the code the AIE cores run)."""
    return _emu.dynamic_scale_partial(v.array("x", x, np.float32))


def dynamic_scale_reduce(partials: np.ndarray, neg_limit: float = 0.0) -> np.ndarray:
    """The reducer core: partials float32 [n, 4] -> params float32[4] {scale, 1/scale,
    flag, 0} by the quantize contract's dynamic rule (dynamic_scale.h reduce). A set
    flag (NaN or inf somewhere) is the host's cue to raise the contract's ValueError."""
    return _emu.dynamic_scale_reduce(v.array("partials", partials, np.float32),
                                     _neg_limit(neg_limit))


def _neg_limit(value: Any) -> float:
    lim = float(value)
    if not (lim >= 0.0 and np.isfinite(np.float32(lim))):
        raise ValueError(f"neg_limit must be a finite float32 >= 0 (0: none), got {value!r}")
    return lim


def gelu_input_range(max_abs: np.float32, max_x: np.float32, neg_limit: float) -> np.float32:
    """The range a GELU input's dynamic scale covers: min(max|x|, max(max x, L)) in
    float32 (quant::gelu_input_range). Why: GELU's input range is lopsided (tiny.en
    fc1: -16.5 .. 8.2) and everything below about -4 maps to ~0 (|gelu(-4)| <
    1.3e-4), so covering -16.5 spends half the codes where the output cannot
    tell values apart; capping doubles the resolution of the positive side."""
    hi = max(np.float32(max_x), np.float32(neg_limit))
    return np.float32(min(np.float32(max_abs), hi))


def dequantize(q: np.ndarray, scale: float) -> np.ndarray:
    """int8 -> float32: float32(q) * scale (emulator kernel)."""
    q = v.array("q", q, np.int8)
    s = v.quantize_scale("scale", scale)
    return _emu.dequantize(q, float(s))


# ------------------------------------------------------- numpy references
def dynamic_scale_reference(x: np.ndarray, neg_limit: float = 0.0) -> np.float32:
    """max|x| / 127 in float32 (capped by gelu_input_range when neg_limit > 0); 1.0
    when that is 0 or its reciprocal overflows."""
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or inf: no dynamic int8 scale exists")
    m = np.max(np.abs(x)).astype(np.float32)
    if _neg_limit(neg_limit) > 0.0:
        m = gelu_input_range(m, np.max(x).astype(np.float32), neg_limit)
    s = np.float32(m / _F32_127)
    with np.errstate(divide="ignore", over="ignore"):
        if not (s > 0) or not np.isfinite(_F32_ONE / s):
            return np.float32(1.0)
    return s


def quantize_reference(x: np.ndarray, scale: np.float32) -> np.ndarray:
    """numpy mirror of xdna::quantize (fp32 multiply by the fp32 reciprocal,
    round half to even, saturate to [-127, 127])."""
    if np.isnan(x).any():
        raise ValueError("x contains NaN, which has no int8 value")
    inv = _F32_ONE / np.float32(scale)
    with np.errstate(over="ignore", invalid="ignore"):
        prod = x * inv  # float32 * float32 -> float32
    return np.clip(np.rint(prod), -127, 127).astype(np.int8)


def dequantize_reference(q: np.ndarray, scale: np.float32) -> np.ndarray:
    return q.astype(np.float32) * np.float32(scale)


# ------------------------------------------------------------ stage entries
def _check_quantize_attrs(attrs: Attrs) -> tuple[bool, np.float32 | None]:
    dynamic = v.flag(attrs, "dynamic")
    if "neg_limit" in attrs and not dynamic:
        raise ValueError("quantize: attrs['neg_limit'] applies to dynamic mode only")
    if dynamic:
        _neg_limit(attrs.get("neg_limit", 0.0))
        return True, None
    return False, v.quantize_scale("attrs['out_scale']", v.required(attrs, "out_scale"))


def _quantize_prepare(consts: Consts, attrs: Attrs) -> tuple[bool, np.float32 | None]:
    return _check_quantize_attrs(attrs)


def _quantize_run(state: tuple[bool, np.float32 | None], inputs: Sequence[np.ndarray],
                  attrs: Attrs) -> Arrays:
    v.count("quantize", inputs, 1)
    dynamic, scale = state
    if dynamic:
        q, s = quantize_dynamic(inputs[0], attrs.get("neg_limit", 0.0))
        return [q, np.array([s], dtype=np.float32)]
    return [quantize(inputs[0], scale)]


def _quantize_reference(consts: Consts, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    v.count("quantize", inputs, 1)
    dynamic, scale = _check_quantize_attrs(attrs)
    x = v.array("x", inputs[0], np.float32)
    if dynamic:
        s = dynamic_scale_reference(x, attrs.get("neg_limit", 0.0))
        return [quantize_reference(x, s), np.array([s], dtype=np.float32)]
    return [quantize_reference(x, scale)]


def _dequantize_scale(inputs: Sequence[np.ndarray], attrs: Attrs) -> np.float32:
    if v.flag(attrs, "dynamic"):
        v.count("dequantize", inputs, 2)
        return v.quantize_scale_buffer("q_scale", inputs[1])
    v.count("dequantize", inputs, 1)
    return v.quantize_scale("attrs['in_scale']", v.required(attrs, "in_scale"))


def _dequantize_prepare(consts: Consts, attrs: Attrs) -> None:
    if not v.flag(attrs, "dynamic"):
        v.quantize_scale("attrs['in_scale']", v.required(attrs, "in_scale"))


def _dequantize_run(state: Any, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    return [dequantize(inputs[0], _dequantize_scale(inputs, attrs))]


def _dequantize_reference(consts: Consts, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    s = _dequantize_scale(inputs, attrs)
    return [dequantize_reference(v.array("q", inputs[0], np.int8), s)]


def _no_macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    return 0


def _dynamic(attrs: Attrs) -> bool:
    return bool(attrs.get("dynamic", False))


def _quantize_outputs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                      attrs: Attrs) -> list[BufferSpec]:
    """int8 codes of x's shape, plus the [1] float32 scale in dynamic mode."""
    out = [BufferSpec("int8", ins[0].shape)]
    return out + [BufferSpec("float32", (1,))] if _dynamic(attrs) else out


def _dequantize_outputs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                        attrs: Attrs) -> list[BufferSpec]:
    return [BufferSpec("float32", ins[0].shape)]


QUANTIZE = register(KernelSpec(
    name="quantize", prepare=_quantize_prepare, run=_quantize_run,
    reference=_quantize_reference, macs=_no_macs,
    output_specs=_quantize_outputs,
))
DEQUANTIZE = register(KernelSpec(
    name="dequantize", prepare=_dequantize_prepare, run=_dequantize_run,
    reference=_dequantize_reference, macs=_no_macs,
    output_specs=_dequantize_outputs,
))

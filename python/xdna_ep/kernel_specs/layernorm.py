"""LayerNorm kernel over the last axis (kernels/layernorm/README.md).

Row statistics are computed from integers (fixed-point rows, exact int64
sums), so the emulator, the AIE core and the numpy reference below agree bit
for bit whatever order they sum in; only the per-row scalars and the
per-element normalization use floating point, in a fixed order of IEEE ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import checks as chk
from .registry import Attrs, BufferSpec, Consts, KernelSpec, register

FRAC_BITS = 24
MAX_C = 8192
OUTS = ("float32", "int8")


@dataclass(frozen=True)
class _Args:
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    epsilon: float
    in_scale: float | None
    out: str
    out_scale: float | None


def _check(x: Any, gamma: Any, beta: Any, epsilon: Any, in_scale: Any, out: Any,
           out_scale: Any) -> _Args:
    x = chk.array("x", x, (np.float32, np.int8), min_ndim=1)
    c = x.shape[-1]
    if c > MAX_C:
        raise ValueError(f"x's last dimension (C={c}) must be <= {MAX_C}")
    gamma = chk.array("gamma", gamma, (np.float32,), ndim=1)
    beta = chk.array("beta", beta, (np.float32,), ndim=1)
    if gamma.shape != (c,):
        raise ValueError(f"gamma must have shape ({c},) to match x, got {gamma.shape}")
    if beta.shape != (c,):
        raise ValueError(f"beta must have shape ({c},) to match x, got {beta.shape}")
    eps = float(epsilon)
    if not np.isfinite(eps) or eps <= 0.0 or np.float32(eps) <= 0:
        raise ValueError(f"epsilon must be a positive finite float32, got {epsilon}")
    if x.dtype == np.int8:
        if in_scale is None:
            raise ValueError("in_scale is required when x is int8")
        si: float | None = chk.scale("in_scale", in_scale)
    else:
        if in_scale is not None:
            raise ValueError("in_scale must be None when x is float32")
        si = None
    out = chk.choice("out", out, OUTS)
    if out == "float32" and out_scale is not None:
        raise ValueError("out_scale must be None when out='float32'")
    so = None if out_scale is None else chk.scale("out_scale", out_scale)
    return _Args(x, gamma, beta, float(np.float32(eps)), si, out, so)


def layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float = 1e-5, *,
              in_scale: float | None = None, out: str = "float32",
              out_scale: float | None = None) -> Any:
    """LayerNorm on the emulator.

    x: float32 [..., C] or int8 [..., C] (then in_scale). out="float32" -> y;
    out="int8" with out_scale -> q; out="int8" without out_scale (dynamic) ->
    (q, scale) with scale = max|y| / 127.
    """
    a = _check(x, gamma, beta, epsilon, in_scale, out, out_scale)
    res = _emu.layernorm(a.x, a.gamma, a.beta, a.epsilon, a.in_scale, a.out, a.out_scale)
    if isinstance(res, tuple):
        return res[0], float(res[1])
    return res


def _row_stats(x: np.ndarray, in_scale: float | None,
               eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, rstd, unit, finite) per row, exactly as layernorm.h computes them."""
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    if x.dtype == np.int8:
        v = rows.astype(np.int64)
        unit = np.full(rows.shape[0], np.float64(np.float32(in_scale)))
        fin = np.ones(rows.shape[0], dtype=bool)
    else:
        bits = rows.view(np.uint32) & np.uint32(0x7FFFFFFF)
        amax_bits = bits.max(axis=1)
        fin = amax_bits < 0x7F800000
        amax = np.where(fin, amax_bits, 0).astype(np.uint32).view(np.float32)
        _, e = np.frexp(amax.astype(np.float64))
        e = np.where(amax_bits == 0, 0, e)
        up = np.ldexp(1.0, FRAC_BITS - e)
        safe = np.where(fin[:, None], rows, np.float32(0)).astype(np.float64)
        v = np.rint(safe * up[:, None]).astype(np.int64)
        unit = np.where(amax_bits == 0, 1.0, np.ldexp(1.0, e - FRAC_BITS))
    s1 = v.sum(axis=1)
    mv = (2 * s1 + c) // (2 * c)
    s2 = ((v - mv[:, None]) ** 2).sum(axis=1)
    r = s1 - c * mv
    dc = np.float64(c)
    var_v = (s2.astype(np.float64) - (r * r).astype(np.float64) / dc) / dc
    var_v = np.maximum(var_v, 0.0)
    mean = (s1.astype(np.float64) / dc) * unit
    var = (var_v * unit) * unit
    rstd = 1.0 / np.sqrt(var + np.float64(np.float32(eps)))
    return mean, rstd, unit, fin


def _quantize(y: np.ndarray, scale: float) -> np.ndarray:
    inv = np.float32(1.0) / np.float32(scale)
    with np.errstate(invalid="ignore"):
        v = np.rint(np.where(np.isnan(y), np.float32(0), y) * inv)
    return np.clip(v, -127, 127).astype(np.int8)


def reference(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float = 1e-5, *,
              in_scale: float | None = None, out: str = "float32",
              out_scale: float | None = None) -> Any:
    """numpy reference, same signature and results (bit for bit) as layernorm()."""
    a = _check(x, gamma, beta, epsilon, in_scale, out, out_scale)
    c = a.x.shape[-1]
    rows = a.x.reshape(-1, c)
    mean, rstd, unit, fin = _row_stats(a.x, a.in_scale, a.epsilon)
    if a.x.dtype == np.int8:
        xv = rows.astype(np.float64) * unit[:, None]
    else:
        xv = np.where(fin[:, None], rows, np.float32(0)).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # Inf/NaN cases are defined below
        n = ((xv - mean[:, None]) * rstd[:, None]).astype(np.float32)
        y = n * a.gamma + a.beta
    y = np.where(fin[:, None], y, np.float32(np.nan)).astype(np.float32)
    if a.out == "float32":
        return y.reshape(a.x.shape)
    safe = np.where(fin[:, None] & ~np.isnan(y), y, np.float32(0))
    if a.out_scale is None:
        amax = np.float32(np.abs(safe).max())
        scale = np.float32(amax / np.float32(127.0))
        with np.errstate(divide="ignore", over="ignore"):
            ok = scale > 0 and np.isfinite(np.float32(1.0) / scale)
        scale_f = float(scale) if ok else 1.0
        return _quantize(safe, scale_f).reshape(a.x.shape), scale_f
    return _quantize(safe, a.out_scale).reshape(a.x.shape)


# --- stage interface (kernels/STAGES.md) ---------------------------------------------


@dataclass(frozen=True)
class LayerNormState:
    gamma: np.ndarray
    beta: np.ndarray


def _consts(consts: Consts) -> tuple[np.ndarray, np.ndarray]:
    gamma = chk.array("consts['gamma']", consts.get("gamma"), (np.float32,), ndim=1)
    beta = chk.array("consts['beta']", consts.get("beta"), (np.float32,), ndim=1)
    return gamma, beta


def prepare(consts: Consts, attrs: Attrs) -> LayerNormState:
    """Through the device bytes: prepare_device(device_constants(consts, attrs))."""
    return prepare_device(device_constants(consts, attrs), attrs)


def prepare_device(blobs: list[np.ndarray], attrs: Attrs) -> LayerNormState:
    """The emulator state from exactly the NPU weights BO content [gamma, beta,
    scalars]. The emulator kernel takes epsilon and the scales as arguments
    (from attrs, per call); the BO's scalar block must hold the same values,
    so a disagreeing block is refused instead of silently ignored."""
    if len(blobs) != 3:
        raise ValueError(f"layernorm device constants: expected [gamma, beta, scalars], got "
                         f"{len(blobs)} blob(s)")
    gamma, beta = _consts({"gamma": blobs[0], "beta": blobs[1]})
    want = device_constants({"gamma": gamma, "beta": beta}, attrs)[2]
    got = chk.array("scalars", blobs[2], (np.float32,), ndim=1)
    if got.tobytes() != want.tobytes():
        raise ValueError(f"layernorm scalar block {got.tolist()} disagrees with the stage "
                         f"attrs (expected {want.tolist()})")
    return LayerNormState(gamma, beta)


def _call(fn: Any, gamma: np.ndarray, beta: np.ndarray, inputs: Sequence[np.ndarray],
          attrs: Attrs) -> list[np.ndarray]:
    dynamic = chk.is_dynamic(attrs)
    x = inputs[0] if inputs else None
    int8_in = isinstance(x, np.ndarray) and x.dtype == np.int8
    chk.count("layernorm", inputs, 2 if (int8_in and dynamic) else 1)
    in_scale = None
    if int8_in:
        in_scale = (chk.scale_buffer("x_scale", inputs[1]) if dynamic
                    else chk.required(attrs, "in_scale"))
    out = attrs.get("out", "float32")
    out_scale = None
    if out == "int8" and not dynamic:
        out_scale = chk.required(attrs, "out_scale")
    res = fn(x, gamma, beta, float(attrs.get("epsilon", 1e-5)), in_scale=in_scale, out=out,
             out_scale=out_scale)
    if isinstance(res, tuple):
        return [res[0], chk.scale_out(res[1])]
    return [res]


def run(state: LayerNormState, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    return _call(layernorm, state.gamma, state.beta, inputs, attrs)


def stage_reference(consts: Consts, inputs: Sequence[np.ndarray],
                    attrs: Attrs) -> list[np.ndarray]:
    gamma, beta = _consts(consts)
    return _call(reference, gamma, beta, inputs, attrs)


def macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    """About two multiply-adds per element (statistics + affine)."""
    return 2 * int(np.prod(shapes[0])) if shapes else 0


def device_constants(consts: Consts, attrs: Attrs) -> list[np.ndarray]:
    """gamma, beta (float32 [C] each), then the core's scalar block float32[4]
    {epsilon, in_scale, 1/out_scale, 0} (0 where a value is dynamic or unused)."""
    gamma, beta = _consts(consts)
    dynamic = chk.is_dynamic(attrs)
    eps = np.float32(attrs.get("epsilon", 1e-5))
    si = np.float32(attrs["in_scale"]) if ("in_scale" in attrs and not dynamic) else 0
    so = attrs.get("out_scale") if attrs.get("out") == "int8" and not dynamic else None
    inv = np.float32(1.0) / np.float32(chk.scale("out_scale", so)) if so is not None else 0
    scal = np.array([eps, si, inv, 0], dtype=np.float32)
    return [np.ascontiguousarray(gamma), np.ascontiguousarray(beta), scal]


def output_specs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                 attrs: Attrs) -> list[BufferSpec]:
    """x's shape, in attrs["out"] (float32 unless int8 is asked for), plus the [1]
    float32 scale of a dynamic int8 output."""
    out = attrs.get("out", "float32")
    if out not in OUTS:
        raise ValueError(f"attrs['out'] must be 'int8' or 'float32', got {out!r}")
    y = [BufferSpec(str(out), ins[0].shape)]
    return y + [BufferSpec("float32", (1,))] if out == "int8" and attrs.get("dynamic") else y


SPEC = register(KernelSpec(
    name="layernorm", prepare=prepare, run=run, reference=stage_reference, macs=macs,
    device_constants=device_constants, prepare_device=prepare_device,
    output_specs=output_specs,
))

"""Argument checks of every kernel wrapper in kernel_specs/ (one module).

The native kernels trust what they are given (that keeps them fast; the
bindings re-check dtype/shape as a last line of defence), so every public
wrapper and stage function validates here first and raises an exception that
names the offending argument: wrong type or dtype -> TypeError, anything else
-> ValueError.

Three scale checks, because three kernel contracts differ: `scale` (a scale
the kernel uses as float32), `quantize_scale` (a scale the kernel also inverts
in float32, so 1/scale must be finite: matmul, quantize), and `real_scale` (a
real factor the softmax/attention kernels use in double precision, kept
unrounded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def array(name: str, value: Any, dtypes: type | tuple[type, ...], *, ndim: int | None = None,
          min_ndim: int = 0) -> np.ndarray:
    """`value` as a validated ndarray: dtype in `dtypes`, C-contiguous, no zero-size dim."""
    allowed = dtypes if isinstance(dtypes, tuple) else (dtypes,)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype not in [np.dtype(d) for d in allowed]:
        names = " or ".join(np.dtype(d).name for d in allowed)
        raise TypeError(f"{name} must have dtype {names}, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), "
                         f"got shape {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if value.size == 0:
        raise ValueError(f"{name} must not have a zero-size dimension, got shape {value.shape}")
    return value


def scale(name: str, value: Any) -> float:
    """A quantization scale: a positive, finite number that stays so in float32
    (returned as that float32 value)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{name} must be a scalar or a 1-element array, got {value.shape}")
        value = value.reshape(-1)[0]
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if math.isnan(f) or not math.isfinite(f) or f <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {f}")
    f32 = float(np.float32(f))
    if f32 <= 0.0 or not math.isfinite(f32):
        raise ValueError(f"{name}={f} is not a positive finite float32")
    return f32


def quantize_scale(name: str, value: Any) -> np.float32:
    """A per-tensor scale the kernel inverts: finite, > 0 in float32, with a finite
    float32 reciprocal (the quantize epilogue multiplies by 1/scale)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{name} must be a scalar, got shape {value.shape}")
        value = value.reshape(-1)[0]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    f = float(value)
    f32 = np.float32(f) if math.isfinite(f) else np.float32(np.nan)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.float32(1.0) / f32 if f32 > 0 else np.float32(np.inf)
    if not (math.isfinite(f) and f32 > 0 and math.isfinite(float(inv))):
        raise ValueError(f"{name} must be a finite float32 > 0 (with a finite reciprocal), "
                         f"got {value!r}")
    return f32


def real_scale(name: str, value: Any) -> float:
    """A real factor: finite and > 0 (kept in double precision, not rounded)."""
    if value is None:
        raise ValueError(f"{name} is required (a finite scale > 0)")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def scale_buffer(name: str, value: Any) -> float:
    """A dynamic-mode scale buffer: float32[1] holding a valid `scale`."""
    arr = array(name, value, np.float32)
    if arr.size != 1:
        raise ValueError(f"{name} must be a float32[1] scale buffer, got shape {arr.shape}")
    return scale(name, arr)


def quantize_scale_buffer(name: str, value: Any) -> np.float32:
    """A dynamic-mode scale buffer: float32[1] holding a valid `quantize_scale`."""
    arr = array(name, value, np.float32)
    if arr.size != 1:
        raise ValueError(f"{name} must be a float32[1] scale buffer, got shape {arr.shape}")
    return quantize_scale(name, arr)


def scale_vector(name: str, value: Any, n: int) -> np.ndarray:
    """Per-channel float32 [n] scales, each finite and > 0."""
    arr = array(name, value, np.float32, ndim=1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"{name} must hold finite values > 0")
    return arr


def scale_out(value: float) -> np.ndarray:
    """A scale as the float32[1] buffer that follows an int8 tensor in dynamic mode."""
    return np.array([value], dtype=np.float32)


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return str(value)


def finite(name: str, arr: np.ndarray) -> None:
    """Rejects Inf/NaN in a float input whose quantization would be undefined."""
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains Inf or NaN")


def count(kernel: str, buffers: Sequence[Any], n: int) -> None:
    if len(buffers) != n:
        raise ValueError(f"{kernel}: expected {n} input buffer(s), got {len(buffers)}")


def flag(attrs: Mapping[str, Any], key: str) -> bool:
    value = attrs.get(key, False)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"attrs[{key!r}] must be a bool, got {value!r}")
    return bool(value)


def is_dynamic(attrs: Mapping[str, Any]) -> bool:
    return flag(attrs, "dynamic")


def required(attrs: Mapping[str, Any], key: str) -> Any:
    if key not in attrs:
        raise ValueError(f"attrs[{key!r}] is required")
    return attrs[key]


def mask(value: Any, target: tuple[int, ...], target_desc: str) -> np.ndarray:
    """A float32 C-contiguous mask broadcastable to `target` (no more dims than it)."""
    m = array("mask", value, np.float32, min_ndim=1)
    if m.ndim > len(target):
        raise ValueError(f"mask has shape {m.shape}: more dims than {target_desc} {target}")
    try:
        shape = np.broadcast_shapes(m.shape, target)
    except ValueError:
        shape = None
    if shape != tuple(target):
        raise ValueError(f"mask shape {m.shape} does not broadcast to {target_desc} {target}")
    return m


def past_len(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"past_len must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"past_len must be >= 0, got {value}")
    return int(value)
